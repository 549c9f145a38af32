// Package wat assembles WebAssembly text into modules for tests, with
// wabt's wat2wasm (Debian: apt-get install wabt, as .ci/deps does). Test
// modules are kept as text in the repository and assembled when the tests
// run, so that what is reviewed is what runs.
package wat

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Assemble turns WebAssembly text into a module; it fails the test if
// wat2wasm is missing or refuses the text.
func Assemble(t testing.TB, text string) []byte {
	t.Helper()
	tool, err := exec.LookPath("wat2wasm")
	if err != nil {
		t.Fatal("wat2wasm not found: install Debian's wabt (apt-get install wabt), as .ci/deps does")
	}
	dir := t.TempDir()
	src, out := filepath.Join(dir, "m.wat"), filepath.Join(dir, "m.wasm")
	if err := os.WriteFile(src, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(tool, "--enable-all", src, "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s\n%s", err, b, text)
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return wasm
}

// AssembleFile assembles the WebAssembly text in the file at path.
func AssembleFile(t testing.TB, path string) []byte {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return Assemble(t, string(text))
}
