package wasmhost

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"os"
	"path/filepath"
)

// Code that passed precheck and compiled in the isolation child is
// remembered in the cache directory as precheck rewrote it, so that a
// later start neither walks nor rewrites it again (22 ms of a 140 ms start
// with the relay module; the rewrite copies the module and merges its
// 37,622 data segments). A file holds:
//
//	checkedMagic (16 bytes)
//	the table limit precheck applied (u32, little endian)
//	the CRC-32C of the code (u32, little endian)
//	the code, as precheck returned it
//
// It is named by the SHA-256 of the code as given to Load, written to a
// temporary file, synced and renamed, so that a name never holds part of
// a file; a file that does not check (a bad sector, a table limit that
// changed) is ignored, and the code is checked again as if it were new.
// The file is mapped rather than read where the system allows (see
// mapFile): its pages come from the page cache, and are not copied.
var checkedMagic = []byte("tern-checked v3\n")

const checkedHeader = 16 + 4 + 4

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (h *Host) checkedPath(sum [sha256.Size]byte) string {
	// v3: the file holds the prechecked code (v2 was an empty marker).
	// A precheck that checks more gets a new version, so that no file of
	// an older one vouches for what it did not check.
	return filepath.Join(h.opts.CacheDir, "tern-checked", "v3", hex.EncodeToString(sum[:]))
}

// checkedCode returns the prechecked form of the code hashed sum (as given
// to Load) if it passed precheck and compiled under isolation before, in
// this process or an earlier one; release gives its memory back once
// nothing reads it. ok is false if there is no such file, or it does not
// check.
func (h *Host) checkedCode(sum [sha256.Size]byte) (code []byte, release func(), ok bool) {
	b, release, err := mapFile(h.checkedPath(sum), checkedHeader+MaxModuleSize)
	if err != nil {
		return nil, nil, false
	}
	if len(b) < checkedHeader || !bytes.Equal(b[:16], checkedMagic) ||
		binary.LittleEndian.Uint32(b[16:]) != h.opts.maxTableEntries() ||
		binary.LittleEndian.Uint32(b[20:]) != crc32.Checksum(b[checkedHeader:], castagnoli) {
		release()
		return nil, nil, false
	}
	return b[checkedHeader:], release, true
}

// rememberChecked writes the file checkedCode reads. It is a cache: a
// failure to write it costs the next start a precheck and a compile in
// the child, no more.
func (h *Host) rememberChecked(sum [sha256.Size]byte, code []byte) {
	p := h.checkedPath(sum)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return
	}
	f, err := os.CreateTemp(filepath.Dir(p), filepath.Base(p)+".*.tmp")
	if err != nil {
		return
	}
	defer os.Remove(f.Name()) // after the rename, nothing to remove
	var head [checkedHeader]byte
	copy(head[:], checkedMagic)
	binary.LittleEndian.PutUint32(head[16:], h.opts.maxTableEntries())
	binary.LittleEndian.PutUint32(head[20:], crc32.Checksum(code, castagnoli))
	_, err = f.Write(head[:])
	if err == nil {
		_, err = f.Write(code)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil && cerr == nil {
		os.Rename(f.Name(), p)
	}
}
