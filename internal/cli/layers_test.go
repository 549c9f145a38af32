package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/cli"
)

// tern plan --at --facts previews a target's layers: which are active at
// that time with those facts (and why the others are not), the effective
// target, and the plan to it.
func TestPlanLayers(t *testing.T) {
	relay := moduleFile(t, "github.com/tern-iot/tern/plugins/relay")
	dir := t.TempDir()
	layers := filepath.Join(dir, "layers.json")
	os.WriteFile(layers, []byte(`[
		{"name":"night","when":{"window":{"from":"22:00","to":"06:00","zone":"Europe/Berlin"}},"target":{"relays":{"heater":false}}},
		{"name":"pi4-fan","when":{"facts":{"board":"rpi4","group":"north"}},"target":{"relays":{"fan":true}}}]`), 0o644)
	facts := filepath.Join(dir, "facts.json")
	os.WriteFile(facts, []byte(`{"board":"rpi4","group":["north","pumps"]}`), 0o644)
	base := []string{"plan", "--module", relay, "--config", `relay={"lines":{"heater":"GPIO17","fan":"GPIO27"}}`,
		"--state", `{"relays":{"heater":true,"fan":false}}`, "--target", `{"relays":{"heater":true}}`, "--layers", layers}

	// 22:30 in Berlin in winter: both active; the plan switches both.
	code, out, errOut := tern(t, append(base, "--at", "2026-03-02T21:30:00Z", "--facts", facts)...)
	if code != cli.ExitOK || !strings.Contains(out, "active    night") || !strings.Contains(out, "active    pi4-fan") ||
		!strings.Contains(out, `effective target: {"relays":{"fan":true,"heater":false}}`) || !strings.Contains(out, "2 tasks") {
		t.Fatalf("at night with a pi4's facts: %d\n%s\n%s", code, out, errOut)
	}
	// Noon, another board: neither; nothing to do.
	code, out, errOut = tern(t, append(base, "--at", "2026-03-02T12:00:00+01:00", "--facts", `{"board":"rpi5"}`)...)
	if code != cli.ExitOK || !strings.Contains(out, "inactive  night: window every day 22:00-06:00 Europe/Berlin is closed; it opens 2026-03-02T22:00:00+01:00") ||
		!strings.Contains(out, `inactive  pi4-fan: fact "board" is "rpi5", not "rpi4"`) || !strings.Contains(out, "nothing to do") {
		t.Fatalf("at noon on a pi5: %d\n%s\n%s", code, out, errOut)
	}
	// With --format json the preview goes to stderr; stdout is the plan.
	code, out, errOut = tern(t, append(base, "--at", "2026-03-02T21:30:00Z", "--facts", facts, "--format", "json")...)
	var doc struct{ Tasks []struct{ Path string } }
	if code != cli.ExitOK || json.Unmarshal([]byte(out), &doc) != nil || len(doc.Tasks) != 2 || !strings.Contains(errOut, "active    night") {
		t.Fatalf("json: %d\n%s\n%s", code, out, errOut)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--at", "22:30"}, "--at \"22:30\": want an RFC 3339 time"},
		{[]string{"--facts", `{"board":1}`}, `fact "board": want a string or a list of strings`},
		{[]string{"--layers", `[{"name":"x","when":{"window":{"from":"9"}},"target":{}}]`}, "write a 24-hour time as HH:MM"},
	} {
		code, _, errOut := tern(t, append(append([]string{}, base...), tc.args...)...)
		if code != cli.ExitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: %d %q, want usage error saying %q", tc.args, code, errOut, tc.want)
		}
	}
}

// tern sign --layers makes a format 4 envelope that carries the layers,
// under the signature.
func TestSignLayers(t *testing.T) {
	dir := t.TempDir()
	code, _, errOut := tern(t, "keys", "generate", "ops", "--dir", dir)
	if code != cli.ExitOK {
		t.Fatalf("keys generate: %d %s", code, errOut)
	}
	code, out, errOut := tern(t, "sign", "--fleet", "demo", "--device", "pi-001", "--key", filepath.Join(dir, "ops.key"), "--version", "5",
		"--layers", `[{"name":"night","when":{"window":{"from":"22:00","to":"06:00"}},"target":{"a":2}}]`, `{"a":1}`)
	if code != cli.ExitOK {
		t.Fatalf("sign --layers: %d %s", code, errOut)
	}
	env, err := fleet.ParseTargetEnvelope([]byte(out))
	if err != nil {
		t.Fatalf("the signed envelope does not parse: %v\n%s", err, out)
	}
	if env.Format != fleet.LayersFormat || !strings.Contains(string(env.Layers), `"night"`) {
		t.Errorf("envelope %s: want format %d with the layers", out, fleet.LayersFormat)
	}
	if code, _, errOut := tern(t, "sign", "--fleet", "demo", "--device", "pi-001", "--key", filepath.Join(dir, "ops.key"),
		"--layers", `[{"name":"a","when":{"soon":1},"target":{}}]`, `{}`); code != cli.ExitUsage || !strings.Contains(errOut, `unknown field "soon"`) {
		t.Errorf("sign with a bad layer: %d %s", code, errOut)
	}
}
