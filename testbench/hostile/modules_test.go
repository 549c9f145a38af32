package hostile_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tern-iot/tern/internal/modfile"
	"github.com/tern-iot/tern/internal/wat"
	"github.com/tern-iot/tern/sdk/abi"
)

// The hostile modules. Those WebAssembly text can express are in
// testdata/*.wat, each with a comment saying what it does and what the
// device must do about it. The rest are made here: binary modules whose
// declared counts lie (decode bombs), a function nested deeper than
// wat2wasm can parse (compile bomb), and variations of the harmless
// module (other versions, a 600 KB manifest field).
//
// Every module released gets a tern.manifest section, as tern module
// build adds one, so that tern release reads the manifest from it and
// never runs hostile code in the operator's (the test's) process.

// assembleFile assembles testdata/name with wat2wasm.
func assembleFile(t *testing.T, name string) []byte {
	t.Helper()
	return wat.AssembleFile(t, filepath.Join("testdata", name))
}

// harmlessText is evil-1.0.0.wat with another version in its manifest.
func harmlessText(t *testing.T, version string) string {
	t.Helper()
	text, err := os.ReadFile(filepath.Join("testdata", "evil-1.0.0.wat"))
	if err != nil {
		t.Fatal(err)
	}
	const v1 = `\"version\":\"1.0.0\"`
	if !strings.Contains(string(text), v1) {
		t.Fatalf("testdata/evil-1.0.0.wat no longer says %s in its manifest", v1)
	}
	return strings.Replace(string(text), v1, `\"version\":\"`+version+`\"`, 1)
}

// harmless is the harmless module as version, ready to release.
func harmless(t *testing.T, version string) []byte {
	t.Helper()
	return withManifest(t, wat.Assemble(t, harmlessText(t, version)))
}

// released is a module from testdata, ready to release.
func released(name string) func(t *testing.T) []byte {
	return func(t *testing.T) []byte {
		t.Helper()
		return withManifest(t, assembleFile(t, name))
	}
}

// withManifest adds the tern.manifest section, with the manifest the
// module's tern_describe returns: the NUL-terminated JSON that every
// module here keeps in a data segment (found, not run).
func withManifest(t *testing.T, wasm []byte) []byte {
	t.Helper()
	js := manifestData(t, wasm)
	var m abi.Manifest
	if err := json.Unmarshal(js, &m); err != nil {
		t.Fatalf("the module's manifest data is not a manifest: %v", err)
	}
	out, err := modfile.WithManifest(wasm, m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// manifestData finds the data segment that holds the manifest: the one
// starting with {"name":, up to its NUL.
func manifestData(t *testing.T, wasm []byte) []byte {
	t.Helper()
	for _, s := range sections(t, wasm) {
		if s.id != 11 {
			continue
		}
		i := bytes.Index(s.body, []byte(`{"name":`))
		if i < 0 {
			break
		}
		end := bytes.IndexByte(s.body[i:], 0)
		if end < 0 {
			t.Fatal("the manifest data segment has no terminating NUL")
		}
		return s.body[i : i+end]
	}
	t.Fatal(`no data segment holds a manifest ({"name":…)`)
	return nil
}

// section is one section of a binary module.
type section struct {
	id   byte
	body []byte
}

func sections(t *testing.T, wasm []byte) []section {
	t.Helper()
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		t.Fatal("not a WebAssembly binary")
	}
	var out []section
	for r := wasm[8:]; len(r) > 0; {
		id := r[0]
		size, n := binary.Uvarint(r[1:])
		if n <= 0 || size > uint64(len(r)-1-n) {
			t.Fatalf("section %d is cut short", id)
		}
		out = append(out, section{id, r[1+n : 1+n+int(size)]})
		r = r[1+n+int(size):]
	}
	return out
}

// encode is a binary module of sections.
func encode(secs ...section) []byte {
	out := []byte("\x00asm\x01\x00\x00\x00")
	for _, s := range secs {
		out = append(out, s.id)
		out = binary.AppendUvarint(out, uint64(len(s.body)))
		out = append(out, s.body...)
	}
	return out
}

// uleb is an unsigned LEB128 number (what binary.AppendUvarint writes).
func uleb(v uint64) []byte { return binary.AppendUvarint(nil, v) }

// cat joins byte slices.
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// maxU32 is the largest count a module can declare: 2^32-1.
const maxU32 = 1<<32 - 1

// custom is a custom section.
func custom(name string, data []byte) section {
	return section{0, cat(uleb(uint64(len(name))), []byte(name), data)}
}

// decodeBomb is a small binary module with one count, nested inside a
// section whose own count is honest, set to 2^32-1 while a few bytes
// follow: a decoder that allocates what is declared before it reads it
// asks for up to 128 GiB. Each comes with the harmless module's manifest
// (version 2.0.0) in a tern.manifest section.
func decodeBomb(kind string) func(t *testing.T) []byte {
	return func(t *testing.T) []byte {
		t.Helper()
		man := custom(modfile.SectionManifest, manifestData(t, wat.Assemble(t, harmlessText(t, "2.0.0"))))
		voidType := section{1, cat(uleb(1), []byte{0x60, 0, 0})} // one type: () -> ()
		oneFunc := section{3, cat(uleb(1), uleb(0))}             // one function of type 0
		code := section{10, cat(uleb(1), uleb(2), []byte{0, 0x0b})}
		pad := bytes.Repeat([]byte{0}, 16) // a few entries' worth of bytes, far from 2^32-1
		var secs []section
		switch kind {
		case "elem-init-count":
			// An active element segment for table 0 at offset 0 whose
			// vector of function indexes declares 2^32-1 entries.
			table := section{4, cat(uleb(1), []byte{0x70, 0x00}, uleb(1))}
			elem := section{9, cat(uleb(1), []byte{0x00, 0x41, 0x00, 0x0b}, uleb(maxU32), pad)}
			secs = []section{voidType, oneFunc, table, elem, code}
		case "type-param-count":
			// A function type with 2^32-1 parameters.
			types := section{1, cat(uleb(1), []byte{0x60}, uleb(maxU32), bytes.Repeat([]byte{0x7f}, 16), []byte{0})}
			secs = []section{types}
		case "type-result-count":
			// A function type with no parameters and 2^32-1 results.
			types := section{1, cat(uleb(1), []byte{0x60, 0}, uleb(maxU32), bytes.Repeat([]byte{0x7f}, 16))}
			secs = []section{types}
		case "name-function-count":
			// A name section whose function-name map declares 2^32-1 names.
			sub := cat(uleb(maxU32), uleb(0), uleb(1), []byte("f"))
			secs = []section{voidType, oneFunc, code, custom("name", cat([]byte{1}, uleb(uint64(len(sub))), sub))}
		case "name-local-count":
			// A name section whose local-name map for function 0 declares
			// 2^32-1 names.
			sub := cat(uleb(1), uleb(0), uleb(maxU32), uleb(0), uleb(1), []byte("x"))
			secs = []section{voidType, oneFunc, code, custom("name", cat([]byte{2}, uleb(uint64(len(sub))), sub))}
		case "data-size":
			// An active data segment for memory 0 declaring 2^32-1 bytes.
			mem := section{5, cat(uleb(1), []byte{0x00}, uleb(1))}
			data := section{11, cat(uleb(1), []byte{0x00, 0x41, 0x00, 0x0b}, uleb(maxU32), pad)}
			secs = []section{mem, data}
		case "br_table-count":
			// A br_table declaring 2^32-1 targets.
			body := cat(uleb(0), []byte{0x41, 0x00, 0x0e}, uleb(maxU32), pad, []byte{0x0b})
			code := section{10, cat(uleb(1), uleb(uint64(len(body))), body)}
			secs = []section{voidType, oneFunc, code}
		default:
			t.Fatalf("no decode bomb %q", kind)
		}
		return encode(append(secs, man)...)
	}
}

// compileBomb is the harmless module (as 2.0.0) with one more function:
// 100,000 nested blocks. wat2wasm cannot parse that deep (it crashes), so
// the function is added to the binary: a type, a function and a body.
func compileBomb(t *testing.T) []byte {
	t.Helper()
	const depth = 100_000
	base := wat.Assemble(t, harmlessText(t, "2.0.0"))
	body := cat(uleb(0), bytes.Repeat([]byte{0x02, 0x40}, depth), bytes.Repeat([]byte{0x0b}, depth), []byte{0x0b})
	secs := sections(t, base)
	var ntypes uint64
	for i, s := range secs {
		switch s.id {
		case 1: // type: add () -> ()
			ntypes = appendEntry(t, &secs[i], []byte{0x60, 0, 0})
		case 3: // function: one more, of the new type
			appendEntry(t, &secs[i], uleb(ntypes))
		case 10: // code: its body
			appendEntry(t, &secs[i], cat(uleb(uint64(len(body))), body))
		}
	}
	return withManifest(t, encode(secs...))
}

// appendEntry adds an entry to a vector section and returns the index it
// got (the old count).
func appendEntry(t *testing.T, s *section, entry []byte) uint64 {
	t.Helper()
	n, k := binary.Uvarint(s.body)
	if k <= 0 {
		t.Fatalf("section %d has no count", s.id)
	}
	s.body = cat(uleb(n+1), s.body[k:], entry)
	return n
}

// manifestBomb is the harmless module whose manifest's version field is
// 600 KB long. The version is what the device repeats in its events and
// state reports; the manifest is moved to 64 KiB so that it overlaps
// nothing.
func manifestBomb(t *testing.T) []byte {
	t.Helper()
	text := harmlessText(t, "2.0.0+"+strings.Repeat("x", 600_000))
	for old, new := range map[string]string{
		`(memory (export "memory") 2)`: `(memory (export "memory") 16)`,
		`(data (i32.const 0) "{`:       `(data (i32.const 65536) "{`,
		`(call $cstr (i32.const 0))`:   `(call $cstr (i32.const 65536))`,
	} {
		if !strings.Contains(text, old) {
			t.Fatalf("testdata/evil-1.0.0.wat no longer has %s", old)
		}
		text = strings.Replace(text, old, new, 1)
	}
	wasm := withManifest(t, wat.Assemble(t, text))
	if m, _, _ := modfile.Manifest(wasm); len(m.Version) < 600_000 {
		t.Fatalf("manifest bomb: the version is %d bytes", len(m.Version))
	}
	return wasm
}

// describe is for failure messages: a module's size and manifest name.
func describe(wasm []byte) string {
	m, ok, _ := modfile.Manifest(wasm)
	if !ok {
		return fmt.Sprintf("%d bytes", len(wasm))
	}
	return fmt.Sprintf("%d bytes, %s %s", len(wasm), m.Name, clip(m.Version, 20))
}
