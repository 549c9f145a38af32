package modfile

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/sdk/abi"
)

// Custom section names.
const (
	SectionManifest  = "tern.manifest"
	SectionSignature = "tern.signature"
)

// Section is a custom section and where it lies in the file.
type Section struct {
	Name       string
	Data       []byte
	Start, End int // the whole section, id byte included
}

// Sections lists a module's custom sections, in file order.
func Sections(wasm []byte) ([]Section, error) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return nil, errors.New("modfile: not a WebAssembly binary")
	}
	var out []Section
	for off := 8; off < len(wasm); {
		start := off
		id := wasm[off]
		size, n := binary.Uvarint(wasm[off+1:])
		if n <= 0 || size > uint64(len(wasm)-off-1-n) {
			return nil, fmt.Errorf("modfile: section at byte %d is cut short", start)
		}
		body := wasm[off+1+n : off+1+n+int(size)]
		off += 1 + n + int(size)
		if id != 0 {
			continue
		}
		nameLen, m := binary.Uvarint(body)
		if m <= 0 || nameLen > uint64(len(body)-m) {
			return nil, fmt.Errorf("modfile: custom section at byte %d has a bad name", start)
		}
		out = append(out, Section{Name: string(body[m : m+int(nameLen)]), Data: body[m+int(nameLen):], Start: start, End: off})
	}
	return out, nil
}

// AppendSection adds a custom section at the end of the module.
func AppendSection(wasm []byte, name string, data []byte) []byte {
	body := binary.AppendUvarint(nil, uint64(len(name)))
	body = append(append(body, name...), data...)
	out := append(append([]byte(nil), wasm...), 0)
	out = binary.AppendUvarint(out, uint64(len(body)))
	return append(out, body...)
}

// Manifest returns the manifest section's manifest; ok is false if the
// module has none.
func Manifest(wasm []byte) (m abi.Manifest, ok bool, err error) {
	secs, err := Sections(wasm)
	if err != nil {
		return m, false, err
	}
	for _, s := range secs {
		if s.Name == SectionManifest {
			if err := json.Unmarshal(s.Data, &m); err != nil {
				return m, true, fmt.Errorf("modfile: manifest section is not a manifest: %w", err)
			}
			return m, true, nil
		}
	}
	return m, false, nil
}

// NamedAs refuses code whose manifest section names another module than
// module: a release on the topic of relay that calls itself evil would run
// with relay's grants. Code without the section passes: it is named by its
// tern_describe, which the agent checks when it loads it.
func NamedAs(wasm []byte, module string) error {
	if m, ok, err := Manifest(wasm); err == nil && ok && m.Name != module {
		return fmt.Errorf("the code calls itself %q (its manifest), but it came on the topic of module %s, whose grants it would run with; release it as --module %s, or build it named %s",
			m.Name, module, m.Name, module)
	}
	return nil
}

// WithManifest returns the module with its manifest in a section, replacing
// one already there. A signed module cannot be changed: sign after.
func WithManifest(wasm []byte, m abi.Manifest) ([]byte, error) {
	secs, err := Sections(wasm)
	if err != nil {
		return nil, err
	}
	out := wasm
	for i := len(secs) - 1; i >= 0; i-- {
		switch secs[i].Name {
		case SectionSignature:
			return nil, errors.New("modfile: the module is signed; add the manifest before signing")
		case SectionManifest:
			out = append(append([]byte(nil), out[:secs[i].Start]...), out[secs[i].End:]...)
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return AppendSection(out, SectionManifest, b), nil
}

// Signature is the signature section's content.
type Signature struct {
	KeyID string `json:"key_id"`
	// Sig is the ed25519 signature of the SHA-256 of every byte before the
	// section.
	Sig []byte `json:"sig"`
}

// Sign returns the module signed with priv, replacing an earlier signature.
func Sign(wasm []byte, priv ed25519.PrivateKey) ([]byte, error) {
	body, _, err := split(wasm)
	if err != nil && !errors.Is(err, signing.ErrUnsigned) {
		return nil, err
	}
	sum := sha256.Sum256(body)
	sig := Signature{KeyID: signing.KeyID(priv.Public().(ed25519.PublicKey)), Sig: ed25519.Sign(priv, sum[:])}
	b, _ := json.Marshal(sig)
	return AppendSection(body, SectionSignature, b), nil
}

// Verify checks the module's signature against the trust store and returns
// the signing key's id and the SHA-256 of the signed bytes. Errors wrap
// signing.ErrUnsigned, ErrUnknownKey or ErrBadSig.
func Verify(wasm []byte, trust signing.Trust) (keyID, sha string, err error) {
	body, sig, err := split(wasm)
	if err != nil {
		return "", "", err
	}
	sum := sha256.Sum256(body)
	if err := trust.Verify(sig.KeyID, sum[:], sig.Sig); err != nil {
		return sig.KeyID, "", err
	}
	return sig.KeyID, hex.EncodeToString(sum[:]), nil
}

// Signer returns the id of the key the module says signed it ("" if none),
// without verifying anything.
func Signer(wasm []byte) string {
	_, sig, err := split(wasm)
	if err != nil {
		return ""
	}
	return sig.KeyID
}

// split separates the signed bytes from the signature, which must be the
// module's last section: nothing may follow what was signed.
func split(wasm []byte) ([]byte, Signature, error) {
	var sig Signature
	secs, err := Sections(wasm)
	if err != nil {
		return nil, sig, err
	}
	for i, s := range secs {
		if s.Name != SectionSignature {
			continue
		}
		if i != len(secs)-1 || s.End != len(wasm) {
			return nil, sig, fmt.Errorf("%w: something was added after the signature", signing.ErrBadSig)
		}
		if err := json.Unmarshal(s.Data, &sig); err != nil || sig.KeyID == "" || len(sig.Sig) != ed25519.SignatureSize {
			return nil, sig, fmt.Errorf("%w: the signature section is malformed", signing.ErrBadSig)
		}
		return wasm[:s.Start], sig, nil
	}
	return wasm, sig, signing.ErrUnsigned
}
