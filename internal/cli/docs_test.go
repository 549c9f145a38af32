package cli_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tern-iot/tern/internal/wasmbuild"
	"github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/runtime/plan"
	"github.com/tern-iot/tern/runtime/state"
)

// mqttDoc is the page whose example targets must plan.
var mqttDoc = filepath.Join("..", "..", "docs", "mqtt.md")

// Every example target in docs/mqtt.md plans with the shipped modules
// (every plugins/*, built here with Go's wasip1 toolchain as make plugins
// builds them), configured as the page says its example device is, from
// an empty state and from the state that device senses: a target a reader
// copies from the docs must not be one the device retries forever.
func TestMQTTDocExampleTargetsPlan(t *testing.T) {
	b, err := os.ReadFile(mqttDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	examples := exampleTargets(t, doc)
	// The page has at least these: the envelope, the group push, the
	// mosquitto_pub push, the TLS push and tern push over TLS.
	if len(examples) < 5 {
		t.Fatalf("found %d example targets in %s, want at least 5 (did the extraction break?): %q", len(examples), mqttDoc, examples)
	}

	for _, ex := range examples {
		t.Logf("%s: %s", ex.where, ex.target)
	}

	// The example device's relay configuration, as the page states it.
	m := regexp.MustCompile("`config: (\\{lines: \\{[^`]*\\}\\})`").FindStringSubmatch(strings.Join(strings.Fields(doc), " "))
	if m == nil {
		t.Fatalf("%s does not say how its example device's relays are configured (`config: {lines: {...}}`)", mqttDoc)
	}
	var relayConfig struct {
		Lines map[string]string `yaml:"lines" json:"lines"`
	}
	if err := yaml.Unmarshal([]byte(m[1]), &relayConfig); err != nil || len(relayConfig.Lines) == 0 {
		t.Fatalf("the example device's relay configuration %q: %v", m[1], err)
	}
	sensed := map[string]any{}
	for name := range relayConfig.Lines {
		sensed[name] = false // what the relay module's sensor reports: every configured relay, off
	}

	pl, loaded := shippedPlanner(t, map[string]json.RawMessage{"relay": mustMarshal(t, relayConfig)})
	if !loaded["relay"] {
		t.Fatalf("the shipped modules offer no relay jobs: %v", loaded)
	}
	for _, ex := range examples {
		target, err := state.Parse([]byte(ex.target))
		if err != nil {
			t.Errorf("%s: the target %s is not valid: %v", ex.where, ex.target, err)
			continue
		}
		for name, current := range map[string]any{"an empty state": map[string]any{}, "the sensed state": map[string]any{"relays": sensed}} {
			if _, err := pl.Find(t.Context(), state.Clone(current), target, plan.Options{}); err != nil {
				t.Errorf("%s: the example target %s does not plan from %s with the shipped modules: %v", ex.where, ex.target, name, err)
			}
		}
	}

	// The check can fail: the example this page used to give (issue 13)
	// has no plan.
	if _, err := pl.Find(t.Context(), map[string]any{}, map[string]any{"relays": map[string]any{"fan": map[string]any{"on": true}}}, plan.Options{}); err == nil {
		t.Error(`{"relays":{"fan":{"on":true}}} plans, but the relay module cannot switch it: the check above proves nothing`)
	}
}

// example is a target found on the page, and where.
type example struct{ where, target string }

// exampleTargets finds the targets docs/mqtt.md shows: the "target" of
// target envelopes (in json blocks, and in mosquitto_pub -m payloads sent
// to a target topic), and the target argument of tern push and tern sign
// in code. A target with an ellipsis (…) is elided on purpose and skipped.
func exampleTargets(t *testing.T, doc string) []example {
	t.Helper()
	var out []example
	envelope := func(where, payload string) {
		var env struct {
			Target json.RawMessage `json:"target"`
		}
		if err := json.Unmarshal([]byte(payload), &env); err != nil {
			t.Errorf("%s: an example target envelope that is not JSON: %v\n%s", where, err, payload)
			return
		}
		if env.Target != nil {
			out = append(out, example{where, string(env.Target)})
		}
	}
	line := func(offset int) int { return strings.Count(doc[:offset], "\n") + 1 }

	fence := regexp.MustCompile("(?ms)^```([a-z]*)\n(.*?)^```")
	for _, blk := range fence.FindAllStringSubmatchIndex(doc, -1) {
		lang, body := doc[blk[2]:blk[3]], doc[blk[4]:blk[5]]
		where := mqttDoc + ":" + strconv.Itoa(line(blk[0]))
		switch lang {
		case "json":
			if strings.Contains(body, `"target"`) && !strings.Contains(body, "…") {
				envelope(where, body)
			}
		case "sh":
			for _, cmd := range strings.Split(strings.ReplaceAll(body, "\\\n", " "), "\n") {
				out = append(out, shellTargets(where, cmd, envelope)...)
			}
		}
	}
	// Inline code in the prose: `tern push … '{}'`.
	for _, span := range regexp.MustCompile("`(tern (?:push|sign) [^`]*)`").FindAllStringSubmatchIndex(doc, -1) {
		out = append(out, shellTargets(mqttDoc+":"+strconv.Itoa(line(span[0])), strings.Join(strings.Fields(doc[span[2]:span[3]]), " "), envelope)...)
	}
	return out
}

// shellTargets reads one command line: mosquitto_pub -m 'ENVELOPE' to a
// target topic (handed to envelope), or tern push/sign ... 'TARGET'.
func shellTargets(where, cmd string, envelope func(where, payload string)) []example {
	quoted := regexp.MustCompile(`'([^']*)'`).FindAllStringSubmatch(cmd, -1)
	fields := strings.Fields(cmd)
	switch {
	case len(fields) == 0 || strings.Contains(cmd, "…"):
	case fields[0] == "mosquitto_pub" && regexp.MustCompile(`-t \S+/target\b`).MatchString(cmd):
		if m := regexp.MustCompile(`-m '([^']*)'`).FindStringSubmatch(cmd); m != nil {
			envelope(where, m[1])
		}
	case len(fields) > 1 && fields[0] == "tern" && (fields[1] == "push" || fields[1] == "sign") && len(quoted) > 0:
		return []example{{where, quoted[len(quoted)-1][1]}}
	}
	return nil
}

// shippedPlanner loads every module under plugins/ (a directory with a
// main.go, the Makefile's rule), built for wasip1, with configs by name.
// loaded names the modules that offer jobs.
func shippedPlanner(t *testing.T, configs map[string]json.RawMessage) (*runtime.Planner, map[string]bool) {
	t.Helper()
	mains, err := filepath.Glob(filepath.Join("..", "..", "plugins", "*", "main.go"))
	if err != nil || len(mains) == 0 {
		t.Fatalf("no plugins/*/main.go: %v", err)
	}
	var specs []runtime.ModuleSpec
	for _, m := range mains {
		wasm, err := wasmbuild.Cached("github.com/tern-iot/tern/plugins/" + filepath.Base(filepath.Dir(m)))
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, runtime.ModuleSpec{Wasm: wasm})
	}
	pl, err := runtime.NewPlanner(t.Context(), runtime.PlannerOptions{Modules: specs, ConfigByName: configs})
	if err != nil {
		t.Fatalf("loading the shipped modules: %v", err)
	}
	t.Cleanup(func() { pl.Close(context.Background()) })
	loaded := map[string]bool{}
	for _, j := range pl.Jobs() {
		loaded[j.Module] = true
	}
	return pl, loaded
}

func mustMarshal(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
