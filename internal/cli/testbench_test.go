package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A malformed scenario is refused before anything runs, with the line
// and what to write; a missing subcommand is a usage error.
func TestTestbenchRunRefusesMalformed(t *testing.T) {
	f := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(f, []byte("agents:\n  - name: r\n    cuont: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"testbench", "run", f}, &stdout, &stderr); code != ExitFail {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, ExitFail, stderr.String())
	}
	for _, w := range []string{"bad.yaml: line 3: unknown key \"cuont\"", "did you mean \"count\"", "assertions: none"} {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("stderr does not say %q:\n%s", w, stderr.String())
		}
	}
	stderr.Reset()
	if code := Main([]string{"testbench"}, &stdout, &stderr); code != ExitUsage {
		t.Fatalf("tern testbench: exit %d, want %d", code, ExitUsage)
	}
	if code := Main([]string{"testbench", "run"}, &stdout, &stderr); code != ExitUsage {
		t.Fatalf("tern testbench run: exit %d, want %d", code, ExitUsage)
	}
}
