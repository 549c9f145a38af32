package daemon

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/runtime/layer"
	"github.com/tern-iot/tern/runtime/state"
)

func layered(t *testing.T, scope string, version uint64, target, layers string) fleet.ScopedTarget {
	t.Helper()
	st := envelope(t, scope, version, target, nil)
	st.SetLayers(json.RawMessage(layers))
	return st
}

// The layers of a device's scopes come in precedence order: its groups'
// as listed, then its own; a redelivery with the same layers is quiet,
// the same version with other layers is refused, and the layers survive
// a restart with the sources.
func TestCombinerLayers(t *testing.T) {
	st, c := testCombiner(t) // pi-001 in groups all, heaters
	steps := []fleet.ScopedTarget{
		layered(t, "device/pi-001", 3, `{"fan":1}`, `[{"name":"mine","target":{"fan":3}}]`),
		layered(t, "group/heaters", 2, `{}`, `[{"name":"warm","target":{"fan":2,"heater":2}}]`),
		layered(t, "group/all", 1, `{"heater":1}`, `[{"name":"base","target":{"fan":1,"heater":1,"lamp":1}}]`),
	}
	for i, s := range steps {
		if _, _, changed, err := c.take(s); err != nil || !changed {
			t.Fatalf("step %d: %v %v", i, changed, err)
		}
	}
	ls, err := c.layers()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, l := range ls {
		ids = append(ids, l.ID())
	}
	if want := []string{"group/all/base", "group/heaters/warm", "device/pi-001/mine"}; !slices.Equal(ids, want) {
		t.Fatalf("layers %q, want %q", ids, want)
	}
	e := layer.Evaluate(ls, nil, time.Now())
	if got := string(state.Canonical(e.Apply(map[string]any{}))); got != `{"fan":3,"heater":2,"lamp":1}` {
		t.Errorf("all layers over an empty target: %s; want the device's over the later group's over the earlier's", got)
	}
	if _, _, changed, err := c.take(layered(t, "group/all", 1, `{"heater":1}`, `[{"name":"base", "target":{"lamp":1,"heater":1,"fan":1}}]`)); changed || err != nil {
		t.Errorf("redelivery with the same layers: %v %v", changed, err)
	}
	if _, _, _, err := c.take(layered(t, "group/all", 1, `{"heater":1}`, `[]`)); err == nil || !strings.Contains(err.Error(), "held with a different target") {
		t.Errorf("the same version without its layers: %v", err)
	}
	c2, err := newCombiner(st, nil, "pi-001", []string{"all", "heaters"})
	if err != nil {
		t.Fatal(err)
	}
	if ls2, err := c2.layers(); err != nil || len(ls2) != 3 {
		t.Errorf("after a restart: %d layers, %v", len(ls2), err)
	}
}

func TestConfigFacts(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, "device: pi-001\nboard: sim\ngroups: [north, pumps]\nfacts:\n  site: mill\n"))
	if err != nil {
		t.Fatal(err)
	}
	f := cfg.facts("sim")
	if !slices.Equal(f["site"], []string{"mill"}) || !slices.Equal(f["group"], []string{"north", "pumps"}) || f["device"][0] != "pi-001" || f["board"][0] != "sim" || len(f["arch"]) != 1 {
		t.Errorf("facts %v", f)
	}
	for _, tc := range []struct{ body, want string }{
		{"device: ok\nfacts:\n  board: rpi9\n", `facts: "board" is a fact ternd knows already`},
		{"device: ok\nfacts:\n  \"a b\": x\n", "facts: fact name"},
		{"device: ok\nfacts:\n  site: \"\"\n", "the value must be 1 to 64 bytes"},
	} {
		if _, err := LoadConfig(writeConfig(t, tc.body)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config %q: %v, want it to say %q", tc.body, err, tc.want)
		}
	}
}
