package fleet

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/tern-iot/tern/internal/signing"
)

// MaxModuleSize is the largest module a release carries, in bytes (8 MiB):
// three times a Go module built with the SDK (2–3 MB), and small enough
// that a board with 512 MB of memory holds the payload, the decoded code
// and its compilation at once. Releases travel in chunks
// (ChunkSize); see RATIONALE.md.
const MaxModuleSize = 8 << 20

// MaxReleasePayload is the largest module release payload accepted, in
// bytes: MaxModuleSize in base64 plus room for the envelope's other fields
// (about 11.2 MB). A broker must let messages this large through:
// Mosquitto's message_size_limit (and max_packet_size) must be 0 (no
// limit, the default) or at least this; see docs/mqtt.md.
const MaxReleasePayload = (MaxModuleSize+2)/3*4 + 64<<10

// ModuleScope is the scope of a module's releases, part of what a release
// signature covers (as the target scopes are): "module/<name>".
func ModuleScope(name string) string { return "module/" + name }

// ReleaseEnvelope carries a new version of a job module to every device
// that runs the module. It is published retained, QoS 1, on the module's
// topic ([Topics.Module]), so a device that connects later, or comes back
// from a week offline, gets the latest release.
//
//	{"format":2,"prefix":"tern","fleet":"demo","module":"relay","version":4,
//	 "module_version":"1.3.0","sha256":"9f86d0…","size":2621440,"wasm":"AGFzbQEAAAAB…",
//	 "issued":"2025-11-24T13:00:00Z","key":"1a2b3c4d5e6f7a8b","sig":"…"}
type ReleaseEnvelope struct {
	// Format is always Format (2).
	Format int `json:"format"`
	// Prefix and Fleet name the fleet the release is for, as in
	// TargetEnvelope: required, covered by the signature, checked by the
	// device (CheckTopics). SetTopics fills them in.
	Prefix string `json:"prefix"`
	Fleet  string `json:"fleet"`
	// Module is the module's name; it must match the topic and the
	// module's own manifest.
	Module string `json:"module"`
	// Version orders the releases of one module: it grows with every
	// release, up to MaxVersion. A device installs each version once,
	// refuses versions older than the newest it accepted, across restarts,
	// and refuses that version again with other code.
	Version uint64 `json:"version"`
	// ModuleVersion is the module's own version from its manifest
	// (semver, e.g. "1.3.0"), optional, for people reading logs and
	// reports; Version orders releases, ModuleVersion does not.
	ModuleVersion string `json:"module_version,omitempty"`
	// SHA256 is the hex SHA-256 of Wasm, and Size its length in bytes.
	// They catch code cut short or changed on the way; the signature
	// covers the code itself.
	SHA256 string `json:"sha256"`
	Size   int    `json:"size"`
	// Wasm is the module's code (base64 in JSON), at most MaxModuleSize
	// bytes. The code carries its own signature section too (tern module
	// sign), which the device's runtime checks before loading it. A
	// chunked release (format ChunkedFormat) carries no code here: its
	// Chunks travel apart, and the device puts them together into Wasm.
	Wasm []byte `json:"wasm,omitempty"`
	// Chunks, in a chunked release, are the hashes of the code's chunks,
	// each published retained on its own topic (Topics.ModuleChunk).
	Chunks *Chunks `json:"chunks,omitempty"`
	// Rollout, when set, is the policy the release reaches the devices
	// under (docs/rollouts.md), covered by the signature.
	Rollout *Rollout `json:"rollout,omitempty"`
	// Issued is when the operator released it (RFC 3339), optional.
	Issued time.Time `json:"issued,omitzero"`
	// Key and Sig sign the envelope (see Sign): the operator key's id and
	// the ed25519 signature, base64.
	Key string `json:"key,omitempty"`
	Sig []byte `json:"sig,omitempty"`
}

// NewRelease returns an unsigned release of wasm as version of module, with
// Format, SHA256, Size and Issued (now) filled in; SetTopics names the
// fleet.
func NewRelease(module string, version uint64, wasm []byte) ReleaseEnvelope {
	sum := sha256.Sum256(wasm)
	return ReleaseEnvelope{
		Format: Format, Module: module, Version: version,
		SHA256: hex.EncodeToString(sum[:]), Size: len(wasm), Wasm: wasm,
		Issued: time.Now().UTC().Truncate(time.Second),
	}
}

// ParseReleaseEnvelope reads a module release received from the fleet. It
// refuses, with a message meant for the operator who released it: payloads
// over MaxReleasePayload and code over MaxModuleSize ([ErrTooLarge]),
// formats other than Format ([ErrUnsupportedFormat]), code whose size or
// SHA-256 differ from the envelope's ([ErrHashMismatch]) and
// ([ErrMalformed]) anything that is not a JSON object, a bad module name,
// a missing or bad "prefix" or "fleet", version 0 or above MaxVersion, a
// missing or malformed hash, and code that is not WebAssembly. It does not
// check the fleet (CheckTopics) nor the signature (Verify, with the
// device's trust store).
func ParseReleaseEnvelope(b []byte) (ReleaseEnvelope, error) {
	what := "module release"
	var env ReleaseEnvelope
	kind := envelopeKind(what, "tern release", MaxReleasePayload,
		fmt.Sprintf("modules are limited to %d bytes (%d MiB)", MaxModuleSize, MaxModuleSize>>20))
	kind.also = []int{ChunkedFormat}
	if err := decode(kind, b, &env); err != nil {
		return ReleaseEnvelope{}, err
	}
	if p := idProblem(env.Module); p != "" {
		return ReleaseEnvelope{}, newError(ErrMalformed, nil, `fleet: %s: bad "module": %s`, what, p)
	}
	what += " of " + env.Module
	if err := checkAddress(what, "tern release --fleet NAME", env.Prefix, env.Fleet); err != nil {
		return ReleaseEnvelope{}, err
	}
	if err := checkVersion(what, "release", env.Version); err != nil {
		return ReleaseEnvelope{}, err
	}
	if err := checkRollout(fmt.Sprintf("%s version %d", what, env.Version), env.Rollout); err != nil {
		return ReleaseEnvelope{}, err
	}
	if env.Format == ChunkedFormat {
		if err := env.checkManifest(what); err != nil {
			return ReleaseEnvelope{}, err
		}
		return env, nil
	}
	if env.Chunks != nil {
		return ReleaseEnvelope{}, newError(ErrMalformed, nil, `fleet: %s: "chunks" in a format %d release; a chunked release is format %d, without "wasm"`, what, Format, ChunkedFormat)
	}
	if len(env.Wasm) == 0 {
		return ReleaseEnvelope{}, newError(ErrMalformed, nil, `fleet: %s has no "wasm": put the module's code there, base64`, what)
	}
	if len(env.Wasm) > MaxModuleSize {
		return ReleaseEnvelope{}, newError(ErrTooLarge, nil, "fleet: %s: the module is %d bytes, over the %d-byte limit; make it smaller (build with -ldflags=-s, drop unused packages)",
			what, len(env.Wasm), MaxModuleSize)
	}
	if !bytes.HasPrefix(env.Wasm, []byte("\x00asm")) {
		return ReleaseEnvelope{}, newError(ErrMalformed, nil, `fleet: %s: "wasm" is not a WebAssembly module (no \0asm header); release a .wasm file`, what)
	}
	if len(env.SHA256) != 2*sha256.Size || !isLowerHex(env.SHA256) {
		return ReleaseEnvelope{}, newError(ErrMalformed, nil, `fleet: %s: "sha256" must be the code's SHA-256 in 64 lowercase hex digits, got %.70q`, what, env.SHA256)
	}
	if env.Size != len(env.Wasm) {
		return ReleaseEnvelope{}, newError(ErrHashMismatch, nil, `fleet: %s: the code is %d bytes but "size" says %d: it was cut short or changed; release it again`, what, len(env.Wasm), env.Size)
	}
	if sum := sha256.Sum256(env.Wasm); hex.EncodeToString(sum[:]) != env.SHA256 {
		return ReleaseEnvelope{}, newError(ErrHashMismatch, nil, `fleet: %s: the code's SHA-256 is %x but "sha256" says %s: it was changed after the envelope was made; release it again`, what, sum, env.SHA256)
	}
	return env, nil
}

func isLowerHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// signedBytes is what a release's signature covers: the common lines (see
// the function signedBytes) for the module's scope, then the module's own
// version, and the SHA-256 and size of the code as it is, not as the
// envelope says.
//
// A chunked release's manifest, which has no code, is signed for the
// SHA-256 and size it names: the same bytes as the whole release of that
// code, so one signature serves both, and the code put together from
// its chunks is checked against them before it is used.
func (env ReleaseEnvelope) signedBytes() []byte {
	sum, size := env.SHA256, env.Size
	if len(env.Wasm) > 0 || env.Chunks == nil {
		s := sha256.Sum256(env.Wasm)
		sum, size = hex.EncodeToString(s[:]), len(env.Wasm)
	}
	return releaseSignedBytes("tern release", env.Prefix, env.Fleet, ModuleScope(env.Module), env.Version, env.ModuleVersion, sum, size, env.Rollout)
}

// releaseSignedBytes is what the signature of a release (a module's or
// ternd's) covers: the common lines, then one line each for the version
// the code calls itself, and the SHA-256 (hex) and size of the code.
func releaseSignedBytes(kind, prefix, fleet, scope string, version uint64, codeVersion, sum string, size int, r *Rollout) []byte {
	return signedBytes(kind, prefix, fleet, scope, version, append([]string{codeVersion, sum, strconv.Itoa(size)}, rolloutLine(r)...)...)
}

// SetTopics makes the release for the fleet and topic prefix of t. Call it
// before Sign: the signature covers them.
func (env *ReleaseEnvelope) SetTopics(t Topics) { env.Prefix, env.Fleet = t.prefix(), t.Fleet }

// CheckTopics reports whether the release is for the fleet and topic
// prefix of t; the error ([ErrWrongFleet]) says which fleet it was made
// for and how to make one for t.
func (env ReleaseEnvelope) CheckTopics(t Topics) error {
	return checkTopics(fmt.Sprintf("module release of %s version %d", env.Module, env.Version), env.Prefix, env.Fleet, t,
		"tern release --module "+env.Module)
}

// Sign signs the release with the operator's key. Set the fleet first
// (SetTopics): the signature covers it, and a release signed for no fleet
// is refused everywhere.
func (env *ReleaseEnvelope) Sign(priv ed25519.PrivateKey) {
	env.Key, env.Sig = sign(priv, env.signedBytes())
}

// Verify checks the release's signature against the device's trust store.
// Errors wrap signing.ErrUnsigned, ErrUnknownKey or ErrBadSig and say what
// to do. The signature covers Prefix and Fleet: check that they are the
// device's with CheckTopics (Device does).
func (env ReleaseEnvelope) Verify(trust signing.Trust) error {
	return verify(trust, env.Key, env.Sig, env.signedBytes(),
		"module releases", "release with tern release --key", fmt.Sprintf("for module %s, version %d", env.Module, env.Version))
}
