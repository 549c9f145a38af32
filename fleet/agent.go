package fleet

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/tern-iot/tern/internal/signing"
)

// MaxAgentSize is the largest ternd binary an agent release carries, in
// bytes once decompressed (48 MiB): three times today's largest static
// build (amd64, about 15 MB), so a device never holds more than that in
// memory while it checks a release.
const MaxAgentSize = 48 << 20

// MaxAgentCompressed is the largest compressed binary an agent release
// carries (16 MiB). A stripped static ternd compresses to about 40% with
// gzip, so today's builds (9 to 15 MB) travel as 4 to 6 MB.
const MaxAgentCompressed = 16 << 20

// MaxAgentPayload is the largest agent release payload accepted: the
// compressed binary in base64 plus room for the other fields (about
// 22.4 MB). Brokers must let messages this large through; see docs/mqtt.md.
const MaxAgentPayload = (MaxAgentCompressed+2)/3*4 + 64<<10

// AgentArches are the architectures ternd is released for, as agent
// releases and topics name them.
var AgentArches = []string{"amd64", "arm64", "armv7", "armv6"}

// AgentScope is the scope of the agent releases for arch, part of what
// their signature covers: "agent/<arch>".
func AgentScope(arch string) string { return "agent/" + arch }

// AgentRelease carries a new ternd binary for one architecture. It is
// published retained, QoS 1, on the architecture's topic ([Topics.Agent]),
// so every device of that architecture gets the latest release when it
// connects. The binary travels gzip-compressed; SHA256 and Size are the
// binary's own, decompressed, which is what the device runs.
//
//	{"format":2,"prefix":"tern","fleet":"demo","arch":"arm64","version":7,
//	 "agent_version":"v0.9.0","sha256":"9f86d0…","size":14900000,"gzip":"H4sIAAAAAAAC/+y9…",
//	 "issued":"2025-11-24T13:00:00Z","key":"1a2b3c4d5e6f7a8b","sig":"…"}
type AgentRelease struct {
	// Format is always Format (2).
	Format int `json:"format"`
	// Prefix and Fleet name the fleet the release is for, as in
	// TargetEnvelope: required, covered by the signature, checked by the
	// device (CheckTopics). SetTopics fills them in.
	Prefix string `json:"prefix"`
	Fleet  string `json:"fleet"`
	// Arch is one of AgentArches; it must match the topic and the device.
	Arch string `json:"arch"`
	// Version orders the agent releases: it grows with every release, up
	// to MaxVersion. A device tries each version once and refuses older
	// ones.
	Version uint64 `json:"version"`
	// AgentVersion is ternd's own version (what ternd version prints),
	// optional, for people reading logs and events.
	AgentVersion string `json:"agent_version,omitempty"`
	// SHA256 is the hex SHA-256 of the decompressed binary, and Size its
	// length in bytes.
	SHA256 string `json:"sha256"`
	Size   int    `json:"size"`
	// Gzip is the binary, gzip-compressed (base64 in JSON), at most
	// MaxAgentCompressed bytes.
	Gzip []byte `json:"gzip,omitempty"`
	// Chunks, in a chunked release (format ChunkedFormat), are the hashes
	// of the chunks of Gzip, which travel apart (Topics.AgentChunk);
	// Chunks.Bytes is the length of Gzip.
	Chunks *Chunks `json:"chunks,omitempty"`
	// Rollout, when set, is the policy the release reaches the devices
	// under (docs/rollouts.md), covered by the signature.
	Rollout *Rollout `json:"rollout,omitempty"`
	// Issued is when the operator released it (RFC 3339), optional.
	Issued time.Time `json:"issued,omitzero"`
	// Key and Sig sign the release (see Sign).
	Key string `json:"key,omitempty"`
	Sig []byte `json:"sig,omitempty"`

	// Binary is the decompressed binary: filled in by NewAgentRelease and
	// ParseAgentRelease, never sent.
	Binary []byte `json:"-"`
}

// NewAgentRelease returns an unsigned release of bin (a ternd binary for
// arch) as version, compressed, with SHA256, Size and Issued filled in.
func NewAgentRelease(arch string, version uint64, bin []byte) (AgentRelease, error) {
	var z bytes.Buffer
	w, err := gzip.NewWriterLevel(&z, gzip.BestCompression)
	if err != nil {
		return AgentRelease{}, err
	}
	if _, err := w.Write(bin); err != nil {
		return AgentRelease{}, err
	}
	if err := w.Close(); err != nil {
		return AgentRelease{}, err
	}
	sum := sha256.Sum256(bin)
	return AgentRelease{
		Format: Format, Arch: arch, Version: version,
		SHA256: hex.EncodeToString(sum[:]), Size: len(bin), Gzip: z.Bytes(), Binary: bin,
		Issued: time.Now().UTC().Truncate(time.Second),
	}, nil
}

// ValidArch reports whether arch is one of AgentArches.
func ValidArch(arch string) error {
	for _, a := range AgentArches {
		if a == arch {
			return nil
		}
	}
	return fmt.Errorf("fleet: architecture %q: ternd is released for %v", arch, AgentArches)
}

// ParseAgentRelease reads an agent release received from the fleet and
// decompresses its binary. It refuses payloads, compressed binaries and
// binaries over their limits ([ErrTooLarge]), other formats
// ([ErrUnsupportedFormat]), a binary whose size or SHA-256 differ from the
// release's ([ErrHashMismatch]) and ([ErrMalformed]) a bad architecture, a
// missing or bad "prefix" or "fleet", version 0 or above MaxVersion, a
// malformed hash, data that is not gzip and a binary that is not an ELF
// executable. It does not check the fleet (CheckTopics) nor the signature
// (Verify, with the device's trust store).
func ParseAgentRelease(b []byte) (AgentRelease, error) {
	what := "agent release"
	var r AgentRelease
	kind := envelopeKind(what, "tern agent release", MaxAgentPayload,
		fmt.Sprintf("agent binaries are limited to %d MiB compressed", MaxAgentCompressed>>20))
	kind.also = []int{ChunkedFormat}
	if err := decode(kind, b, &r); err != nil {
		return AgentRelease{}, err
	}
	if err := ValidArch(r.Arch); err != nil {
		return AgentRelease{}, newError(ErrMalformed, nil, `fleet: %s: bad "arch": %v`, what, err)
	}
	what += " for " + r.Arch
	if err := checkAddress(what, "tern agent release --fleet NAME", r.Prefix, r.Fleet); err != nil {
		return AgentRelease{}, err
	}
	if err := checkVersion(what, "release", r.Version); err != nil {
		return AgentRelease{}, err
	}
	if err := checkRollout(fmt.Sprintf("%s version %d", what, r.Version), r.Rollout); err != nil {
		return AgentRelease{}, err
	}
	if r.Format == ChunkedFormat {
		if err := r.checkManifest(what); err != nil {
			return AgentRelease{}, err
		}
		return r, nil
	}
	if r.Chunks != nil {
		return AgentRelease{}, newError(ErrMalformed, nil, `fleet: %s: "chunks" in a format %d release; a chunked release is format %d, without "gzip"`, what, Format, ChunkedFormat)
	}
	if len(r.Gzip) == 0 {
		return AgentRelease{}, newError(ErrMalformed, nil, `fleet: %s has no "gzip": put the gzip-compressed ternd binary there, base64`, what)
	}
	if len(r.Gzip) > MaxAgentCompressed {
		return AgentRelease{}, newError(ErrTooLarge, nil, "fleet: %s: the compressed binary is %d bytes, over the %d-byte limit", what, len(r.Gzip), MaxAgentCompressed)
	}
	if len(r.SHA256) != 2*sha256.Size || !isLowerHex(r.SHA256) {
		return AgentRelease{}, newError(ErrMalformed, nil, `fleet: %s: "sha256" must be the binary's SHA-256 in 64 lowercase hex digits, got %.70q`, what, r.SHA256)
	}
	if r.Size <= 0 || r.Size > MaxAgentSize {
		return AgentRelease{}, newError(ErrTooLarge, nil, `fleet: %s: "size" %d is not between 1 and the %d-byte limit`, what, r.Size, MaxAgentSize)
	}
	if err := r.unpack(what); err != nil {
		return AgentRelease{}, err
	}
	return r, nil
}

// unpack decompresses Gzip into Binary and checks it against SHA256 and
// Size, which were checked for form.
func (r *AgentRelease) unpack(what string) error {
	zr, err := gzip.NewReader(bytes.NewReader(r.Gzip))
	if err != nil {
		return newError(ErrMalformed, err, `fleet: %s: "gzip" is not gzip data (%v); release it with tern agent release`, what, err)
	}
	bin, err := io.ReadAll(io.LimitReader(zr, int64(r.Size)+1))
	if err != nil {
		return newError(ErrHashMismatch, err, `fleet: %s: the compressed binary is damaged (%v); release it again`, what, err)
	}
	if len(bin) != r.Size {
		return newError(ErrHashMismatch, nil, `fleet: %s: the binary is not the %d bytes "size" says (it was cut short or changed); release it again`, what, r.Size)
	}
	if sum := sha256.Sum256(bin); hex.EncodeToString(sum[:]) != r.SHA256 {
		return newError(ErrHashMismatch, nil, `fleet: %s: the binary's SHA-256 is %x but "sha256" says %s; release it again`, what, sum, r.SHA256)
	}
	if !bytes.HasPrefix(bin, []byte("\x7fELF")) {
		return newError(ErrMalformed, nil, "fleet: %s: the binary is not an ELF executable; release a ternd built for linux/%s", what, r.Arch)
	}
	r.Binary = bin
	return nil
}

// signedBytes is what an agent release's signature covers: the common
// lines (see the function signedBytes) for the architecture's scope, then
// ternd's own version and the SHA-256 and size of the binary as it is.
func (r AgentRelease) signedBytes() []byte {
	sum, size := r.SHA256, r.Size
	if len(r.Binary) > 0 || r.Chunks == nil {
		s := sha256.Sum256(r.Binary)
		sum, size = hex.EncodeToString(s[:]), len(r.Binary)
	}
	return releaseSignedBytes("tern agent release", r.Prefix, r.Fleet, AgentScope(r.Arch), r.Version, r.AgentVersion, sum, size, r.Rollout)
}

// SetTopics makes the release for the fleet and topic prefix of t. Call it
// before Sign: the signature covers them.
func (r *AgentRelease) SetTopics(t Topics) { r.Prefix, r.Fleet = t.prefix(), t.Fleet }

// CheckTopics reports whether the release is for the fleet and topic
// prefix of t; the error ([ErrWrongFleet]) says which fleet it was made
// for and how to make one for t.
func (r AgentRelease) CheckTopics(t Topics) error {
	return checkTopics(fmt.Sprintf("agent release for %s version %d", r.Arch, r.Version), r.Prefix, r.Fleet, t, "tern agent release")
}

// Sign signs the release with the operator's key. Set the fleet first
// (SetTopics): the signature covers it.
func (r *AgentRelease) Sign(priv ed25519.PrivateKey) {
	r.Key, r.Sig = sign(priv, r.signedBytes())
}

// Verify checks the release's signature against the device's trust store.
// Unlike module releases, an agent release is never accepted unsigned:
// with an empty trust store it fails with signing.ErrUnknownKey. The
// signature covers Prefix and Fleet: check that they are the device's with
// CheckTopics (Device does).
func (r AgentRelease) Verify(trust signing.Trust) error {
	return verify(trust, r.Key, r.Sig, r.signedBytes(),
		"agent releases", "release with tern agent release --key", fmt.Sprintf("for %s, version %d", r.Arch, r.Version))
}

// PushAgentRelease publishes r, retained, QoS 1, on its architecture's
// topic ([Topics.Agent]) and waits for the broker's acknowledgement: every
// device of that architecture (now or later) receives it. It refuses a
// release devices would refuse for its form or its fleet (see PushRelease);
// NewAgentRelease makes a good one.
func (o *Operator) PushAgentRelease(ctx context.Context, r AgentRelease) error {
	if r.Format == 0 {
		r.Format = Format
	}
	if err := o.address("agent release for "+r.Arch, r.Key != "", &r.Prefix, &r.Fleet, func(t Topics) error { return r.CheckTopics(t) }); err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("fleet: release agent for %s: encode: %w", r.Arch, err)
	}
	if _, err := ParseAgentRelease(b); err != nil {
		return fmt.Errorf("fleet: not releasing what devices would refuse: %w", err)
	}
	if r.Format != Format {
		return fmt.Errorf("fleet: release agent for %s: give the whole release (format %d, with its binary); PushAgentRelease cuts it into chunks", r.Arch, Format)
	}
	manifest, chunks := r.Split(ChunkSize)
	for i, c := range chunks {
		wait := o.opts.ConnectTimeout + time.Duration(len(c)/releaseRate)*time.Second
		if err := o.publishRetained(ctx, fmt.Sprintf("release agent for %s: chunk %d of %d", r.Arch, i+1, len(chunks)),
			o.opts.Topics.AgentChunk(r.Arch, i), c, wait); err != nil {
			return err
		}
	}
	if err := o.awaitRetained(ctx, o.opts.Topics.AgentChunk(r.Arch, len(chunks)-1), chunks[len(chunks)-1]); err != nil {
		return err
	}
	mb, err := json.Marshal(manifest)
	if err != nil {
		return fmt.Errorf("fleet: release agent for %s: encode: %w", r.Arch, err)
	}
	return o.publishRetained(ctx, "release agent for "+r.Arch, o.opts.Topics.Agent(r.Arch), mb, o.opts.ConnectTimeout)
}
