package wasmhost

import (
	"bytes"
	"crypto/sha256"
	"os"
	"testing"
)

// The prechecked code remembered in the cache comes back as it was
// written, and only then: a damaged, cut or emptied file, or one written
// for another table limit, is as if there were none.
func TestCheckedCode(t *testing.T) {
	h := &Host{opts: Options{CacheDir: t.TempDir()}.withDefaults()}
	code := bytes.Repeat([]byte("\x00asm\x01\x00\x00\x00 prechecked"), 1000)
	sum := sha256.Sum256([]byte("the code as given"))
	if _, _, ok := h.checkedCode(sum); ok {
		t.Fatal("code found before any was remembered")
	}
	h.rememberChecked(sum, code)
	got, release, ok := h.checkedCode(sum)
	if !ok || !bytes.Equal(got, code) {
		t.Fatalf("remembered code: ok %t, same bytes %t", ok, bytes.Equal(got, code))
	}
	release()
	good, err := os.ReadFile(h.checkedPath(sum))
	if err != nil {
		t.Fatal(err)
	}
	for name, damage := range map[string]func([]byte) []byte{
		"a byte flipped": func(b []byte) []byte { b[len(b)/2] ^= 1; return b },
		"cut short":      func(b []byte) []byte { return b[:len(b)-1] },
		"header only":    func(b []byte) []byte { return b[:checkedHeader-1] },
		"empty":          func(b []byte) []byte { return nil },
		"another magic":  func(b []byte) []byte { b[0] ^= 1; return b },
	} {
		if err := os.WriteFile(h.checkedPath(sum), damage(bytes.Clone(good)), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, ok := h.checkedCode(sum); ok {
			t.Errorf("%s: the file was taken as checked code", name)
		}
	}
	if err := os.WriteFile(h.checkedPath(sum), good, 0o600); err != nil {
		t.Fatal(err)
	}
	other := &Host{opts: Options{CacheDir: h.opts.CacheDir, TableEntries: h.opts.maxTableEntries() / 2}.withDefaults()}
	if _, _, ok := other.checkedCode(sum); ok {
		t.Error("code prechecked with another table limit was taken as checked")
	}
}
