package layer_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/runtime/layer"
	"github.com/tern-iot/tern/runtime/state"
)

func TestParseErrors(t *testing.T) {
	many := make([]string, layer.MaxLayers+1)
	for i := range many {
		many[i] = fmt.Sprintf(`{"name":"l%d","target":{}}`, i)
	}
	manyFacts := make([]string, layer.MaxFacts+1)
	for i := range manyFacts {
		manyFacts[i] = fmt.Sprintf(`"f%d":"v"`, i)
	}
	for _, tt := range []struct{ in, want string }{
		{`{"name":"x"}`, "must be a JSON array"},
		{`[{"name":"","target":{}}]`, `"name"`},
		{`[{"name":"a/b","target":{}}]`, `has '/'`},
		{`[{"name":"a","target":{}},{"name":"a","target":{}}]`, "used twice"},
		{`[{"name":"a","target":[1]}]`, `"target" must be a JSON object`},
		{`[{"name":"a"}]`, `"target" must be a JSON object`},
		{`[{"name":"a","when":{"battery":"low"},"target":{}}]`, `unknown field "battery"`},
		{`[{"name":"a","when":{"window":{"from":"25:00"}},"target":{}}]`, "hour over 23"},
		{`[{"name":"a","when":{"window":{"days":["moonday"]}},"target":{}}]`, `day "moonday"`},
		{`[{"name":"a","when":{"window":{"zone":"Nowhere/Atlantis"}},"target":{}}]`, "unknown time zone"},
		{`[{"name":"a","when":{"facts":{"board":""}},"target":{}}]`, "wanted value"},
		{`[{"name":"a","when":{"facts":{"bo ard":"x"}},"target":{}}]`, "fact name"},
		{`[{"name":"a","when":{"facts":{` + strings.Join(manyFacts, ",") + `}},"target":{}}]`, "over the limit of 16"},
		{`[` + strings.Join(many, ",") + `]`, "33 layers"},
		{`[{"name":"a","target":` + strings.Repeat(`{"a":`, state.MaxDepth+1) + `1` + strings.Repeat(`}`, state.MaxDepth+1) + `}]`, `"target"`},
	} {
		_, err := layer.Parse([]byte(tt.in), "device/d")
		if !errors.Is(err, layer.ErrBad) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%.60s) = %v, want ErrBad saying %q", tt.in, err, tt.want)
		}
	}
	// The largest legal counts pass.
	max := make([]string, layer.MaxLayers)
	for i := range max {
		max[i] = fmt.Sprintf(`{"name":"l%d","when":{"facts":{%s}},"target":{}}`, i, strings.Join(manyFacts[:layer.MaxFacts], ","))
	}
	if ls, err := layer.Parse([]byte("["+strings.Join(max, ",")+"]"), "device/d"); err != nil || len(ls) != layer.MaxLayers {
		t.Errorf("the largest legal layers: %d layers, %v", len(ls), err)
	}
	for _, empty := range []string{"", "null", " ", "[]"} {
		if ls, err := layer.Parse([]byte(empty), "device/d"); err != nil || len(ls) != 0 {
			t.Errorf("Parse(%q) = %v, %v; want no layers", empty, ls, err)
		}
	}
}

func mustParse(t *testing.T, scope, s string) []layer.Layer {
	t.Helper()
	ls, err := layer.Parse([]byte(s), scope)
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

var facts = layer.Facts{
	layer.FactDevice: {"pi-001"}, layer.FactBoard: {"rpi4"}, layer.FactArch: {"arm64"},
	layer.FactGroup: {"north", "pumps"}, "site": {"mill"},
}

func TestFacts(t *testing.T) {
	for _, tt := range []struct {
		when    string
		active  bool
		problem string
	}{
		{`{}`, true, ""},
		{`{"facts":{"board":"rpi4"}}`, true, ""},
		{`{"facts":{"board":"rpi5"}}`, false, ""},
		{`{"facts":{"group":"pumps"}}`, true, ""},
		{`{"facts":{"group":"south"}}`, false, ""},
		{`{"facts":{"group":"north","board":"rpi4","site":"mill"}}`, true, ""},
		{`{"facts":{"site":"mill","arch":"arm"}}`, false, ""},
		{`{"facts":{"colour":"red"}}`, false, `device/pi-001/x: fact "colour" is not known on this device (it knows arch, board, device, group, site`},
	} {
		ls := mustParse(t, "device/pi-001", `[{"name":"x","when":`+tt.when+`,"target":{"a":1}}]`)
		e := layer.Evaluate(ls, facts, time.Now())
		if got := len(e.Active) == 1; got != tt.active {
			t.Errorf("when %s: active %v, want %v", tt.when, got, tt.active)
		}
		if got := strings.Join(e.Problems, "\n"); !strings.HasPrefix(got, tt.problem) || (tt.problem == "") != (got == "") {
			t.Errorf("when %s: problems %q, want %q", tt.when, got, tt.problem)
		}
	}
}

func TestEvaluate(t *testing.T) {
	// A group's layers come first, then the device's: the device's have
	// the last word, and within a scope a later layer over an earlier.
	ls := append(
		mustParse(t, "group/north", `[
			{"name":"night","when":{"window":{"from":"22:00","to":"06:00","zone":"Europe/Berlin"}},"target":{"fan":{"on":false},"lamp":"dim"}},
			{"name":"pi5","when":{"facts":{"board":"rpi5"}},"target":{"fan":{"speed":9}}}]`),
		mustParse(t, "device/pi-001", `[
			{"name":"quiet","when":{"window":{"from":"23:00","to":"05:00","zone":"Europe/Berlin"}},"target":{"fan":null,"lamp":"off"}}]`)...)
	base := map[string]any{"fan": map[string]any{"on": true, "speed": 3.0}, "lamp": "on"}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	day := func(h, m int) time.Time { return time.Date(2026, 3, 2, h, m, 0, 0, berlin) }
	for _, tt := range []struct {
		at     time.Time
		active []string
		want   string
		next   time.Time
	}{
		{day(12, 0), nil, `{"fan":{"on":true,"speed":3},"lamp":"on"}`, day(22, 0)},
		{day(22, 30), []string{"group/north/night"}, `{"fan":{"on":false,"speed":3},"lamp":"dim"}`, day(23, 0)},
		{day(23, 30), []string{"group/north/night", "device/pi-001/quiet"}, `{"fan":null,"lamp":"off"}`, day(24+5, 0)},
		{day(24+5, 30), []string{"group/north/night"}, `{"fan":{"on":false,"speed":3},"lamp":"dim"}`, day(24+6, 0)},
	} {
		e := layer.Evaluate(ls, facts, tt.at)
		if !slices.Equal(e.Active, tt.active) {
			t.Errorf("at %v: active %q, want %q", tt.at, e.Active, tt.active)
		}
		if got := string(state.Canonical(e.Apply(base))); got != tt.want {
			t.Errorf("at %v: effective target %s, want %s", tt.at, got, tt.want)
		}
		if !e.Next.Equal(tt.next) {
			t.Errorf("at %v: next edge %v, want %v", tt.at, e.Next, tt.next)
		}
	}
	if got := string(state.Canonical(base)); got != `{"fan":{"on":true,"speed":3},"lamp":"on"}` {
		t.Errorf("Apply changed its base: %s", got)
	}
}

func TestWhy(t *testing.T) {
	got := layer.Why([]string{"group/g/a", "device/d/b"}, []string{"device/d/b", "device/d/c"})
	if want := "layer device/d/c became active; layer group/g/a became inactive"; got != want {
		t.Errorf("Why = %q, want %q", got, want)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	ls := append(mustParse(t, "group/g", `[{"name":"a","when":{"window":{"days":["sat"],"from":"01:00","zone":"Europe/Berlin"},"facts":{"board":"rpi4"}},"target":{"x":{"y":null}}}]`),
		mustParse(t, "device/d", `[{"name":"b","target":{"z":1}}]`)...)
	b, err := layer.Marshal(ls)
	if err != nil {
		t.Fatal(err)
	}
	back, err := layer.Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := layer.Marshal(back)
	if string(b) != string(b2) || back[0].ID() != "group/g/a" || back[1].ID() != "device/d/b" {
		t.Errorf("round trip changed the layers:\n%s\n%s", b, b2)
	}
	sat := time.Date(2026, 3, 7, 1, 30, 0, 0, time.FixedZone("CET", 3600))
	if e := layer.Evaluate(back, facts, sat); len(e.Active) != 2 {
		t.Errorf("read back, active at %v: %q, want both", sat, e.Active)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`[{"name":"night","when":{"window":{"days":["mon"],"from":"22:00","to":"06:00","zone":"Europe/Berlin"},"facts":{"board":"rpi4"}},"target":{"a":{"b":null}}}]`,
		`[{"name":"a","target":{}},{"name":"b","when":null,"target":{"x":[1,2]}}]`,
		`[{"name":"a","when":{"window":{"from":"24:00"}},"target":{}}]`,
		`null`, `[]`, `{}`, `[1]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ls, err := layer.Parse(b, "device/d")
		if err != nil {
			if !errors.Is(err, layer.ErrBad) {
				t.Fatalf("error does not wrap ErrBad: %v", err)
			}
			return
		}
		if len(ls) > layer.MaxLayers {
			t.Fatalf("%d layers accepted", len(ls))
		}
		// What Parse accepts, a device stores and reads back the same,
		// and evaluates without panicking.
		m, err := layer.Marshal(ls)
		if err != nil {
			t.Fatal(err)
		}
		back, err := layer.Unmarshal(m)
		if err != nil || len(back) != len(ls) {
			t.Fatalf("stored layers do not read back: %v\n%s", err, m)
		}
		e := layer.Evaluate(back, facts, time.Date(2026, 3, 2, 23, 0, 0, 0, time.UTC))
		_ = e.Apply(map[string]any{"a": 1.0})
	})
}
