package signing

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Key files are one line of text: "tern-ed25519-private <base64 seed>" or
// "tern-ed25519-public <base64 key>", so that a key pasted into the wrong
// place is recognised as such.
const (
	privateTag = "tern-ed25519-private"
	publicTag  = "tern-ed25519-public"
)

// Errors callers branch on.
var (
	ErrUnsigned   = errors.New("signing: not signed")
	ErrUnknownKey = errors.New("signing: signed by a key this device does not trust")
	ErrBadSig     = errors.New("signing: signature does not match: the bytes were changed after signing, or the signature is forged")
)

// KeyID names a public key: the first 8 bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Generate makes a key pair and writes NAME.key (private, mode 0600) and
// NAME.pub into dir. It refuses to overwrite an existing key.
func Generate(dir, name string) (pub ed25519.PublicKey, err error) {
	if name == "" || strings.ContainsAny(name, `/\`) {
		return nil, fmt.Errorf("signing: key name %q: use letters, digits, - and _", name)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	privPath, pubPath := filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pub")
	f, err := os.OpenFile(privPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("signing: %w (keys are never overwritten)", err)
	}
	_, werr := fmt.Fprintf(f, "%s %s\n", privateTag, base64.StdEncoding.EncodeToString(priv.Seed()))
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, werr
	}
	if err := os.WriteFile(pubPath, []byte(FormatPublic(pub)+"\n"), 0o644); err != nil {
		return nil, err
	}
	return pub, nil
}

// FormatPublic is a public key as key files and configuration hold it.
func FormatPublic(pub ed25519.PublicKey) string {
	return publicTag + " " + base64.StdEncoding.EncodeToString(pub)
}

// ReadPrivate reads a private key file.
func ReadPrivate(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	seed, err := decode(string(b), privateTag, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("signing: %s: %w", path, err)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// ParsePublic reads a public key as FormatPublic writes it (or the file
// content of NAME.pub).
func ParsePublic(s string) (ed25519.PublicKey, error) {
	b, err := decode(s, publicTag, ed25519.PublicKeySize)
	if err != nil {
		return nil, fmt.Errorf("signing: public key: %w", err)
	}
	return ed25519.PublicKey(b), nil
}

func decode(s, tag string, size int) ([]byte, error) {
	f := strings.Fields(s)
	if len(f) != 2 || f[0] != tag {
		other := privateTag
		if tag == privateTag {
			other = publicTag
		}
		if len(f) == 2 && f[0] == other {
			return nil, fmt.Errorf("this is a %s key, not a %s one", strings.TrimPrefix(other, "tern-ed25519-"), strings.TrimPrefix(tag, "tern-ed25519-"))
		}
		return nil, fmt.Errorf("want %q followed by base64", tag)
	}
	b, err := base64.StdEncoding.DecodeString(f[1])
	if err != nil || len(b) != size {
		return nil, fmt.Errorf("want %d bytes of base64 after %q", size, tag)
	}
	return b, nil
}

// Trust is a device's trust store: the operator public keys it accepts.
type Trust map[string]ed25519.PublicKey

// NewTrust builds a trust store from public keys.
func NewTrust(keys ...ed25519.PublicKey) Trust {
	t := Trust{}
	for _, k := range keys {
		t[KeyID(k)] = k
	}
	return t
}

// Verify checks sig, made by the key keyID, over msg.
func (t Trust) Verify(keyID string, msg, sig []byte) error {
	pub, ok := t[keyID]
	if !ok {
		return fmt.Errorf("%w (key %s)", ErrUnknownKey, keyID)
	}
	if !ed25519.Verify(pub, msg, sig) {
		return ErrBadSig
	}
	return nil
}
