package runtime

import "testing"

// A hash computed ahead by Hashed serves the slice it was computed for and
// no other: code given again, cut or replaced is hashed again.
func TestHashedHoldsForItsSlice(t *testing.T) {
	code := []byte("\x00asm\x01\x00\x00\x00 some module")
	other := []byte("\x00asm\x01\x00\x00\x00 another module")
	spec := ModuleSpec{Name: "m", Wasm: code}.Hashed()
	if got := spec.codeHash(); got != codeHash(code) {
		t.Fatalf("hash of the hashed code %s, want %s", got, codeHash(code))
	}
	spec.hash = "not the hash" // shows which one codeHash returns
	if got := spec.codeHash(); got != "not the hash" {
		t.Fatal("the hash computed ahead was not used for the same slice")
	}
	for name, wasm := range map[string][]byte{
		"another slice": other,
		"cut":           code[:len(code)-1],
		"a copy":        append([]byte(nil), code...),
		"nil":           nil,
	} {
		s := spec
		s.Wasm = wasm
		if got := s.codeHash(); got != codeHash(wasm) {
			t.Errorf("%s: hash %s, want %s", name, got, codeHash(wasm))
		}
	}
	spec.withoutCode()
	if spec.Wasm != nil || spec.code != nil || spec.hash != "" {
		t.Error("withoutCode kept the code, or a pointer into it")
	}
	if (ModuleSpec{}).Hashed().hash != "" {
		t.Error("a spec without code got a hash")
	}
}
