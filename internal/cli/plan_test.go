package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/tern-iot/tern/internal/cli"
	"github.com/tern-iot/tern/internal/wasmbuild"
	"github.com/tern-iot/tern/runtime/state"
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
		Stats map[string]any               `json:"stats"`
	}
	if code != cli.ExitOK || json.Unmarshal([]byte(out), &doc) != nil || len(doc.Tasks) != 1 || doc.Tasks[0].Path != "/relays/heater" {
		t.Fatalf("json: %d\n%s", code, out)
	}
	// Stats in snake_case, the time in milliseconds (not Go's nanoseconds).
	var keys []string
	for k := range doc.Stats {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if got := strings.Join(keys, " "); got != "backtracks calls elapsed_ms states tries" {
		t.Errorf("json stats keys: %s, want backtracks calls elapsed_ms states tries\n%s", got, out)
	}
	if ms, ok := doc.Stats["elapsed_ms"].(float64); !ok || ms <= 0 || ms > 60_000 {
		t.Errorf("json stats elapsed_ms = %v, want the search's time in milliseconds", doc.Stats["elapsed_ms"])
	}
	if calls, _ := doc.Stats["calls"].(float64); calls < 1 {
		t.Errorf("json stats calls = %v, want at least 1", doc.Stats["calls"])
	}

	// No plan: exit 1, and the reason names the path and the jobs tried.
	code, _, errOut = tern(t, append(base, "--target", `{"relays":{"pump":true}}`)...)
	if code != cli.ExitFail || !strings.Contains(errOut, "/relays/pump") || !strings.Contains(errOut, "condition does not hold") {
		t.Fatalf("no plan: %d %q", code, errOut)
	}
	// Partial: the plan reaches what it can (stdout), and the error names
	// what it leaves out and why (exit 1); --all-or-nothing plans nothing.
	partial := append(base, "--target", `{"relays":{"heater":true,"pump":true}}`)
	code, out, errOut = tern(t, partial...)
	if code != cli.ExitFail || !strings.Contains(out, "1 task") || !strings.Contains(out, "/relays/heater") ||
		!strings.Contains(errOut, "part of the target cannot be reached at 1 place") ||
		!strings.Contains(errOut, "/relays/pump: is absent, target true\n    relay.set: condition does not hold") {
		t.Fatalf("partial: %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = tern(t, append(partial, "--format", "json")...)
	var pdoc struct {
		Tasks     []struct{ Path string } `json:"tasks"`
		Unreached []struct {
			Path  string
			Tried []struct{ Job, Why string }
		} `json:"unreached"`
	}
	if code != cli.ExitFail || json.Unmarshal([]byte(out), &pdoc) != nil || len(pdoc.Tasks) != 1 || len(pdoc.Unreached) != 1 ||
		pdoc.Unreached[0].Path != "/relays/pump" || len(pdoc.Unreached[0].Tried) == 0 || pdoc.Unreached[0].Tried[0].Why != "condition does not hold" {
		t.Fatalf("partial json: %d\n%s", code, out)
	}
	code, out, errOut = tern(t, append(partial, "--all-or-nothing")...)
	if code != cli.ExitFail || out != "" || !strings.Contains(errOut, "no plan reaches the target") || !strings.Contains(errOut, "/relays/pump") {
		t.Fatalf("all or nothing: %d\n%s\n%s", code, out, errOut)
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
		{[]string{"plan", "--module", "missing.wasm", "--target", `{}`}, "--module missing.wasm: no such file"},
		// The deepest target devices take plans; one level more is refused.
		{append(base, "--target", nested(state.MaxDepth+1)), "nests objects and arrays more than 64 levels deep"},
	} {
		if code, _, errOut := tern(t, tc.args...); code != cli.ExitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: %d %q, want exit 2 mentioning %q", tc.args, code, errOut, tc.want)
		}
	}
}

// nested is a target whose objects nest depth levels deep, the target
// itself the first: {"a":{"a":...{"a":1}...}}.
func nested(depth int) string {
	return strings.Repeat(`{"a":`, depth-1) + `{"a":1}` + strings.Repeat("}", depth-1)
}

// Targets nest at most state.MaxDepth levels deep, as devices take them:
// tern sign (and push, and plan) refuses a deeper one before signing.
func TestTargetNesting(t *testing.T) {
	dir := t.TempDir()
	if code, _, _ := tern(t, "keys", "generate", "ops", "--dir", dir); code != cli.ExitOK {
		t.Fatal("keys generate failed")
	}
	key := dir + "/ops.key"
	code, out, errOut := tern(t, "sign", "--device", "pi-001", "--key", key, nested(state.MaxDepth))
	if code != cli.ExitOK || !strings.Contains(out, `"target":{"a":{"a":`) {
		t.Errorf("sign of a target %d levels deep: exit %d, %q", state.MaxDepth, code, errOut)
	}
	for _, cmd := range [][]string{{"sign", "--key", key}, {"push"}} {
		args := append(cmd, "--device", "pi-001", nested(state.MaxDepth+1))
		code, out, errOut := tern(t, args...)
		if code != cli.ExitUsage || out != "" || !strings.Contains(errOut, "the target nests objects and arrays more than 64 levels deep") {
			t.Errorf("tern %s (%d levels): exit %d, stdout %q, stderr %q; want exit 2", cmd[0], state.MaxDepth+1, code, out, errOut)
		}
	}
}
