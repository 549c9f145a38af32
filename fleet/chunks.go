package fleet

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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
	// Bytes is the length of what was cut into chunks: an agent release's
	// compressed binary. A module release leaves it out: its chunks are
	// the code, of the release's size.
	Bytes int `json:"bytes,omitempty"`
	// SHA256 are the chunks' hashes, in order, hex.
	SHA256 []string `json:"sha256"`
}

// split cuts b into chunks of size (ChunkSize if 0) and lists their hashes.
func split(b []byte, size int) (*Chunks, [][]byte) {
	if size == 0 {
		size = ChunkSize
	}
	c := &Chunks{Size: size}
	var chunks [][]byte
	for off := 0; off < len(b); off += size {
		part := b[off:min(off+size, len(b))]
		sum := sha256.Sum256(part)
		c.SHA256 = append(c.SHA256, hex.EncodeToString(sum[:]))
		chunks = append(chunks, part)
	}
	return c, chunks
}

// checkList says what is wrong with the list for total bytes.
func (c *Chunks) checkList(what string, total int) error {
	if c.Size < minChunkSize || c.Size > maxChunkSize {
		return newError(ErrMalformed, nil, `fleet: %s: chunks of %d bytes; use %d to %d (tern cuts %d)`, what, c.Size, minChunkSize, maxChunkSize, ChunkSize)
	}
	if want := (total + c.Size - 1) / c.Size; len(c.SHA256) != want {
		return newError(ErrMalformed, nil, `fleet: %s: %d bytes in chunks of %d make %d chunks, but "chunks" lists %d hashes`, what, total, c.Size, want, len(c.SHA256))
	}
	for i, h := range c.SHA256 {
		if len(h) != 2*sha256.Size || !isLowerHex(h) {
			return newError(ErrMalformed, nil, `fleet: %s: the hash of chunk %d must be 64 lowercase hex digits, got %.70q`, what, i, h)
		}
	}
	return nil
}

// check reports whether b is chunk i of total bytes cut as the list says.
func (c *Chunks) check(i int, b []byte, total int) error {
	if i < 0 || i >= len(c.SHA256) {
		return newError(ErrMalformed, nil, "fleet: there is no chunk %d of %d", i, len(c.SHA256))
	}
	if want := min(c.Size, total-i*c.Size); len(b) != want {
		return newError(ErrHashMismatch, nil, "fleet: chunk %d is %d bytes, not %d: it was cut short, or belongs to another release", i, len(b), want)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != c.SHA256[i] {
		return newError(ErrHashMismatch, nil, "fleet: chunk %d does not match its hash: it belongs to another release, or was changed", i)
	}
	return nil
}

// Split returns the chunked form of a whole release: its manifest and its
// chunks, in order, each chunkSize bytes but the last (ChunkSize if
// chunkSize is 0). The manifest keeps the release's signature.
func (env ReleaseEnvelope) Split(chunkSize int) (manifest ReleaseEnvelope, chunks [][]byte) {
	manifest = env
	manifest.Format, manifest.Wasm = ChunkedFormat, nil
	manifest.Chunks, chunks = split(env.Wasm, chunkSize)
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
	case env.Chunks.Bytes != 0 && env.Chunks.Bytes != env.Size:
		return newError(ErrMalformed, nil, `fleet: %s: "chunks.bytes" %d is not the code's size %d; leave it out`, what, env.Chunks.Bytes, env.Size)
	}
	return env.Chunks.checkList(what, env.Size)
}

// CheckChunk reports whether b is chunk i of the manifest's code.
func (env ReleaseEnvelope) CheckChunk(i int, b []byte) error {
	if env.Chunks == nil {
		return newError(ErrMalformed, nil, "fleet: module release of %s version %d is not chunked", env.Module, env.Version)
	}
	if err := env.Chunks.check(i, b, env.Size); err != nil {
		return fmt.Errorf("module release of %s version %d: %w", env.Module, env.Version, err)
	}
	return nil
}

// fetchItem is what a device fetches for the manifest: the release goes
// to offer when it is put together.
func (env ReleaseEnvelope) fetchItem(t Topics, offer func(ReleaseEnvelope)) fetchItem {
	return fetchItem{
		key: ModuleScope(env.Module), version: env.Version, sum: env.SHA256, chunks: env.Chunks, total: env.Size,
		topic: func(i int) string { return t.ModuleChunk(env.Module, i) },
		finish: func(chunks [][]byte) error {
			whole, err := env.Join(chunks)
			if err == nil {
				offer(whole)
			}
			return err
		},
		refusal: Refusal{Topic: t.Module(env.Module), Module: env.Module},
	}
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

// AgentChunk is the topic of chunk i of an agent release's compressed
// binary, <prefix>/<fleet>/agent/<arch>/chunks/<i>: retained, raw bytes.
func (t Topics) AgentChunk(arch string, i int) string {
	return t.Agent(arch) + "/chunks/" + strconv.Itoa(i)
}

// Split returns the chunked form of a whole agent release: its manifest
// and the chunks of its compressed binary (see ReleaseEnvelope.Split).
func (r AgentRelease) Split(chunkSize int) (manifest AgentRelease, chunks [][]byte) {
	manifest = r
	manifest.Format, manifest.Gzip, manifest.Binary = ChunkedFormat, nil, nil
	manifest.Chunks, chunks = split(r.Gzip, chunkSize)
	manifest.Chunks.Bytes = len(r.Gzip)
	return manifest, chunks
}

// checkManifest checks a chunked agent release's fields that a whole one
// does not have.
func (r AgentRelease) checkManifest(what string) error {
	switch {
	case len(r.Gzip) > 0:
		return newError(ErrMalformed, nil, `fleet: %s: a chunked release (format %d) carries no "gzip"; the binary travels in chunks`, what, ChunkedFormat)
	case r.Chunks == nil:
		return newError(ErrMalformed, nil, `fleet: %s: a chunked release (format %d) needs "chunks"`, what, ChunkedFormat)
	case len(r.SHA256) != 2*sha256.Size || !isLowerHex(r.SHA256):
		return newError(ErrMalformed, nil, `fleet: %s: "sha256" must be the binary's SHA-256 in 64 lowercase hex digits, got %.70q`, what, r.SHA256)
	case r.Size <= 0 || r.Size > MaxAgentSize:
		return newError(ErrTooLarge, nil, `fleet: %s: "size" %d is not between 1 and the %d-byte limit`, what, r.Size, MaxAgentSize)
	case r.Chunks.Bytes <= 0 || r.Chunks.Bytes > MaxAgentCompressed:
		return newError(ErrTooLarge, nil, `fleet: %s: "chunks.bytes" %d is not between 1 and the %d-byte limit of a compressed binary`, what, r.Chunks.Bytes, MaxAgentCompressed)
	}
	return r.Chunks.checkList(what, r.Chunks.Bytes)
}

// Join puts the manifest's compressed binary together from its chunks,
// decompresses and checks it, and returns the whole release (format
// Format): its signature is still to be checked.
func (r AgentRelease) Join(chunks [][]byte) (AgentRelease, error) {
	z := make([]byte, 0, r.Chunks.Bytes)
	for _, c := range chunks {
		z = append(z, c...)
	}
	whole := r
	whole.Format, whole.Chunks, whole.Gzip = Format, nil, z
	if err := whole.unpack("agent release for " + r.Arch); err != nil {
		return AgentRelease{}, err
	}
	return whole, nil
}

// fetchItem is what a device fetches for the manifest: the release goes
// to offer when it is put together.
func (r AgentRelease) fetchItem(t Topics, offer func(AgentRelease)) fetchItem {
	return fetchItem{
		key: AgentScope(r.Arch), version: r.Version, sum: r.SHA256, chunks: r.Chunks, total: r.Chunks.Bytes,
		topic: func(i int) string { return t.AgentChunk(r.Arch, i) },
		finish: func(chunks [][]byte) error {
			whole, err := r.Join(chunks)
			if err == nil {
				offer(whole)
			}
			return err
		},
		refusal: Refusal{Topic: t.Agent(r.Arch), Agent: true},
	}
}
