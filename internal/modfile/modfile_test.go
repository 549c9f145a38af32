package modfile_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/tern-iot/tern/internal/modfile"
	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/sdk/abi"
)

// minimal is the smallest module: the header only.
var minimal = []byte("\x00asm\x01\x00\x00\x00")

func TestManifestAndSignature(t *testing.T) {
	dir := t.TempDir()
	pub, err := signing.Generate(dir, "k")
	if err != nil {
		t.Fatal(err)
	}
	priv, err := signing.ReadPrivate(filepath.Join(dir, "k.key"))
	if err != nil {
		t.Fatal(err)
	}
	man := abi.Manifest{Name: "m", Version: "1", ABI: abi.ABIVersion}
	w, err := modfile.WithManifest(minimal, man)
	if err != nil {
		t.Fatal(err)
	}
	w, _ = modfile.WithManifest(w, man) // replaces, does not add a second
	secs, _ := modfile.Sections(w)
	if len(secs) != 1 {
		t.Fatalf("%d sections, want one manifest", len(secs))
	}
	if got, ok, err := modfile.Manifest(w); err != nil || !ok || got.Name != "m" {
		t.Fatalf("manifest: %+v %v %v", got, ok, err)
	}
	if _, _, err := modfile.Verify(w, signing.NewTrust(pub)); !errors.Is(err, signing.ErrUnsigned) {
		t.Fatalf("unsigned: %v", err)
	}
	signed, err := modfile.Sign(w, priv)
	if err != nil {
		t.Fatal(err)
	}
	if key, sum, err := modfile.Verify(signed, signing.NewTrust(pub)); err != nil || key != signing.KeyID(pub) || len(sum) != 64 {
		t.Fatalf("verify: %q %q %v", key, sum, err)
	}
	if _, err := modfile.WithManifest(signed, man); err == nil {
		t.Fatal("changing a signed module must be refused")
	}
	resigned, _ := modfile.Sign(signed, priv) // replaces the signature
	if secs, _ := modfile.Sections(resigned); len(secs) != 2 {
		t.Fatalf("re-signing left %d sections", len(secs))
	}
	if _, _, err := modfile.Verify(signed, signing.Trust{}); !errors.Is(err, signing.ErrUnknownKey) {
		t.Fatalf("unknown key: %v", err)
	}
	bad := append([]byte(nil), signed...)
	bad[30] ^= 1 // inside the manifest, before the signature
	if _, _, err := modfile.Verify(bad, signing.NewTrust(pub)); !errors.Is(err, signing.ErrBadSig) {
		t.Fatalf("tampered: %v", err)
	}
	if _, err := modfile.Sections([]byte("nope")); err == nil {
		t.Fatal("not wasm accepted")
	}
	if _, err := modfile.Sections(append(append([]byte(nil), minimal...), 0, 0x7f)); err == nil {
		t.Fatal("cut-short section accepted")
	}
}
