package fleet

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// A module release travels in chunks: its envelope, the manifest (format
// ChunkedFormat), names the code's SHA-256 and size, as a whole release
// does, and the SHA-256 of each chunk; each chunk is the raw bytes of
// ChunkSize of the code, published retained on its own topic
// (Topics.ModuleChunk). The signature covers the manifest as it would the
// whole release, so one signature serves both forms. A device fetches the
// chunks it lacks, keeps each in its store as it arrives (a download cut
// short resumes where it stopped, across reconnects and restarts), checks
// each against its hash, and puts the code together and checks it against
// the signed SHA-256 and size before it offers the release.
//
// Chunks are small enough for any broker's defaults (NATS's max_payload
// is 1 MB), need no base64, and a slow link that drops now and then loses
// at most the chunk in flight, not the release.

// ChunkedFormat is the format of a chunked release's manifest.
const ChunkedFormat = 3

// ChunkSize is the size of the chunks tern release cuts code into: 256 KiB.
const ChunkSize = 256 << 10

// Chunk sizes a manifest may name: a device holds one chunk per
// outstanding request in memory.
const (
	minChunkSize = 1 << 10
	maxChunkSize = 1 << 20
)

// Chunks are the chunks of a release's code.
type Chunks struct {
	// Size is the length of each chunk but the last, which holds the rest.
	Size int `json:"size"`
	// SHA256 are the chunks' hashes, in order, hex.
	SHA256 []string `json:"sha256"`
}

// Split returns the chunked form of a whole release: its manifest and its
// chunks, in order, each chunkSize bytes but the last (ChunkSize if
// chunkSize is 0). The manifest keeps the release's signature.
func (env ReleaseEnvelope) Split(chunkSize int) (manifest ReleaseEnvelope, chunks [][]byte) {
	if chunkSize == 0 {
		chunkSize = ChunkSize
	}
	manifest = env
	manifest.Format, manifest.Wasm = ChunkedFormat, nil
	manifest.Chunks = &Chunks{Size: chunkSize}
	for off := 0; off < len(env.Wasm); off += chunkSize {
		c := env.Wasm[off:min(off+chunkSize, len(env.Wasm))]
		sum := sha256.Sum256(c)
		manifest.Chunks.SHA256 = append(manifest.Chunks.SHA256, hex.EncodeToString(sum[:]))
		chunks = append(chunks, c)
	}
	return manifest, chunks
}

// checkManifest checks a chunked release's fields that a whole release
// does not have, and those it has in another form.
func (env ReleaseEnvelope) checkManifest(what string) error {
	switch {
	case len(env.Wasm) > 0:
		return newError(ErrMalformed, nil, `fleet: %s: a chunked release (format %d) carries no "wasm"; its code travels in chunks`, what, ChunkedFormat)
	case env.Chunks == nil:
		return newError(ErrMalformed, nil, `fleet: %s: a chunked release (format %d) needs "chunks"`, what, ChunkedFormat)
	case env.Size <= 0:
		return newError(ErrMalformed, nil, `fleet: %s: "size" must be the code's length in bytes, got %d`, what, env.Size)
	case env.Size > MaxModuleSize:
		return newError(ErrTooLarge, nil, "fleet: %s: the module is %d bytes, over the %d-byte limit; make it smaller (build with -ldflags=-s, drop unused packages)", what, env.Size, MaxModuleSize)
	case len(env.SHA256) != 2*sha256.Size || !isLowerHex(env.SHA256):
		return newError(ErrMalformed, nil, `fleet: %s: "sha256" must be the code's SHA-256 in 64 lowercase hex digits, got %.70q`, what, env.SHA256)
	case env.Chunks.Size < minChunkSize || env.Chunks.Size > maxChunkSize:
		return newError(ErrMalformed, nil, `fleet: %s: chunks of %d bytes; use %d to %d (tern release cuts %d)`, what, env.Chunks.Size, minChunkSize, maxChunkSize, ChunkSize)
	}
	if want := (env.Size + env.Chunks.Size - 1) / env.Chunks.Size; len(env.Chunks.SHA256) != want {
		return newError(ErrMalformed, nil, `fleet: %s: %d bytes in chunks of %d make %d chunks, but "chunks" lists %d hashes`, what, env.Size, env.Chunks.Size, want, len(env.Chunks.SHA256))
	}
	for i, h := range env.Chunks.SHA256 {
		if len(h) != 2*sha256.Size || !isLowerHex(h) {
			return newError(ErrMalformed, nil, `fleet: %s: the hash of chunk %d must be 64 lowercase hex digits, got %.70q`, what, i, h)
		}
	}
	return nil
}

// chunkLen is the length of chunk i of a manifest's code.
func (env ReleaseEnvelope) chunkLen(i int) int {
	return min(env.Chunks.Size, env.Size-i*env.Chunks.Size)
}

// CheckChunk reports whether b is chunk i of the manifest's code.
func (env ReleaseEnvelope) CheckChunk(i int, b []byte) error {
	if env.Chunks == nil || i < 0 || i >= len(env.Chunks.SHA256) {
		return newError(ErrMalformed, nil, "fleet: module release of %s version %d has no chunk %d", env.Module, env.Version, i)
	}
	if len(b) != env.chunkLen(i) {
		return newError(ErrHashMismatch, nil, "fleet: chunk %d of the release of %s version %d is %d bytes, not %d: it was cut short, or belongs to another release", i, env.Module, env.Version, len(b), env.chunkLen(i))
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != env.Chunks.SHA256[i] {
		return newError(ErrHashMismatch, nil, "fleet: chunk %d of the release of %s version %d does not match its hash: it belongs to another release, or was changed", i, env.Module, env.Version)
	}
	return nil
}

// Join puts the manifest's code together from its chunks, which
// CheckChunk accepted, and returns the whole release (format Format, as
// if it had come in one message): the code checked
// against the manifest's SHA-256 and size (the signature still to be
// checked, with Verify, as for any release).
func (env ReleaseEnvelope) Join(chunks [][]byte) (ReleaseEnvelope, error) {
	code := make([]byte, 0, env.Size)
	for _, c := range chunks {
		code = append(code, c...)
	}
	whole := env
	whole.Format, whole.Chunks, whole.Wasm = Format, nil, code
	if len(code) != env.Size {
		return ReleaseEnvelope{}, newError(ErrHashMismatch, nil, "fleet: the chunks of the release of %s version %d make %d bytes, not %d", env.Module, env.Version, len(code), env.Size)
	}
	if sum := sha256.Sum256(code); hex.EncodeToString(sum[:]) != env.SHA256 {
		return ReleaseEnvelope{}, newError(ErrHashMismatch, nil, "fleet: the chunks of the release of %s version %d do not make the code the manifest names (SHA-256 %s)", env.Module, env.Version, env.SHA256)
	}
	if len(code) < 4 || string(code[:4]) != "\x00asm" {
		return ReleaseEnvelope{}, newError(ErrMalformed, nil, "fleet: the release of %s version %d is not a WebAssembly module (no \\0asm header)", env.Module, env.Version)
	}
	return whole, nil
}

// ModuleChunk is the topic of chunk i of a module's chunked release,
// <prefix>/<fleet>/modules/<name>/chunks/<i>: retained, raw bytes.
func (t Topics) ModuleChunk(name string, i int) string {
	return t.Module(name) + "/chunks/" + strconv.Itoa(i)
}
