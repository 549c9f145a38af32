package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tern-iot/tern/internal/cli"
	"github.com/tern-iot/tern/internal/wasmbuild"
)

func moduleFile(t *testing.T, importPath string) string {
	t.Helper()
	wasm, err := wasmbuild.Cached(importPath)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), filepath.Base(importPath)+".wasm")
	if err := os.WriteFile(f, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestPlanPreview(t *testing.T) {
	relay := moduleFile(t, "github.com/tern-iot/tern/plugins/relay")
	cfg := `relay={"lines":{"heater":"GPIO17","fan":"GPIO27"}}`
	base := []string{"plan", "--module", relay, "--config", cfg, "--state", `{"relays":{"heater":false}}`}

	code, out, errOut := tern(t, append(base, "--target", `{"relays":{"heater":true,"fan":true}}`)...)
	if code != cli.ExitOK || !strings.Contains(out, "2 tasks, 2 parallel branches at most") ||
		!strings.Contains(out, "relay.switch") || !strings.Contains(out, "relay.set") {
		t.Fatalf("text: %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = tern(t, append(base, "--target", `{"relays":{"heater":true}}`, "--format", "mermaid")...)
	if code != cli.ExitOK || !strings.HasPrefix(out, "flowchart TD") || !strings.Contains(out, "/relays/heater") {
		t.Fatalf("mermaid: %d\n%s", code, out)
	}
	code, out, _ = tern(t, append(base, "--target", `{"relays":{"heater":true}}`, "--format", "dot")...)
	if code != cli.ExitOK || !strings.HasPrefix(out, "digraph plan {") {
		t.Fatalf("dot: %d\n%s", code, out)
	}
	code, out, _ = tern(t, append(base, "--target", `{"relays":{"heater":true}}`, "--format", "json")...)
	var doc struct {
		Tasks []struct{ Job, Path string } `json:"tasks"`
	}
	if code != cli.ExitOK || json.Unmarshal([]byte(out), &doc) != nil || len(doc.Tasks) != 1 || doc.Tasks[0].Path != "/relays/heater" {
		t.Fatalf("json: %d\n%s", code, out)
	}

	// No plan: exit 1, and the reason names the path and the jobs tried.
	code, _, errOut = tern(t, append(base, "--target", `{"relays":{"pump":true}}`)...)
	if code != cli.ExitFail || !strings.Contains(errOut, "/relays/pump") || !strings.Contains(errOut, "condition does not hold") {
		t.Fatalf("no plan: %d %q", code, errOut)
	}
	// Bad input: exit 2 with what to fix.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"plan", "--target", `{}`}, "at least one --module"},
		{append(base, "--target", `{}`, "--format", "svg"), "want text, mermaid, dot or json"},
		{append(base, "--target", `[1]`), "must be a JSON object"},
		{[]string{"plan", "--module", relay, "--config", "nope={}", "--target", `{}`}, "no module of that name"},
	} {
		if code, _, errOut := tern(t, tc.args...); code != cli.ExitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: %d %q, want exit 2 mentioning %q", tc.args, code, errOut, tc.want)
		}
	}
}
