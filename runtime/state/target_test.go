package state

import (
	"slices"
	"strings"
	"testing"
)

func TestSatisfiesUnsatisfied(t *testing.T) {
	state := `{
		"relays": {"pump": {"on": true, "pin": 17}, "fan": {"on": false}},
		"rooms": {"kitchen": {"setpoint": 21, "sensors": ["t1", "t2"]}},
		"mode": "auto",
		"nothing": null
	}`
	tests := []struct {
		name   string
		state  string // defaults to the shared state above
		target string
		want   []string // unsatisfied pointers
	}{
		{name: "empty target", target: `{}`},
		{name: "equal scalar leaf", target: `{"mode":"auto"}`},
		{name: "nested partial", target: `{"relays":{"pump":{"on":true}}}`},
		{name: "several leaves", target: `{"relays":{"pump":{"on":true},"fan":{"on":false}},"mode":"auto"}`},
		{name: "array whole", target: `{"rooms":{"kitchen":{"sensors":["t1","t2"]}}}`},
		{name: "array differs", target: `{"rooms":{"kitchen":{"sensors":["t1"]}}}`, want: []string{"/rooms/kitchen/sensors"}},
		{name: "array order matters", target: `{"rooms":{"kitchen":{"sensors":["t2","t1"]}}}`, want: []string{"/rooms/kitchen/sensors"}},
		{name: "scalar differs", target: `{"relays":{"pump":{"on":false}}}`, want: []string{"/relays/pump/on"}},
		{name: "number", target: `{"rooms":{"kitchen":{"setpoint":21.0}}}`},
		{name: "number differs", target: `{"rooms":{"kitchen":{"setpoint":22}}}`, want: []string{"/rooms/kitchen/setpoint"}},
		{name: "type differs", target: `{"mode":1}`, want: []string{"/mode"}},
		{name: "missing leaf", target: `{"relays":{"heater":{"on":true}}}`, want: []string{"/relays/heater/on"}},
		{name: "missing subtree, nested nulls met", target: `{"x":{"y":null,"z":{"w":null}}}`},
		{name: "empty object anywhere is met", target: `{"mode":{},"x":{"y":{}}}`},
		{name: "null requires absent", target: `{"relays":{"heater":null}}`},
		{name: "null fails when present", target: `{"relays":{"fan":null}}`, want: []string{"/relays/fan"}},
		{name: "null fails on present null", target: `{"nothing":null}`, want: []string{"/nothing"}},
		{name: "null target leaf vs non-null", target: `{"mode":null}`, want: []string{"/mode"}},
		{name: "null leaf below scalar is absent", target: `{"mode":{"x":null}}`},
		{name: "object target vs scalar state", target: `{"mode":{"x":1}}`, want: []string{"/mode/x"}},
		{name: "object target vs array state", target: `{"rooms":{"kitchen":{"sensors":{"0":"t1"}}}}`, want: []string{"/rooms/kitchen/sensors/0"}},
		{name: "array target vs object state", target: `{"relays":[]}`, want: []string{"/relays"}},
		{name: "sorted order", target: `{"z":1,"a":{"c":1,"b":1},"m":null,"mode":"manual","relays":{"fan":{"on":true}}}`,
			want: []string{"/a/b", "/a/c", "/mode", "/relays/fan/on", "/z"}},
		{name: "escaped keys", state: `{}`, target: `{"a/b":{"m~n":1}}`, want: []string{"/a~1b/m~0n"}},
		{name: "root scalar equal", state: `3`, target: `3`},
		{name: "root scalar differs", state: `3`, target: `4`, want: []string{""}},
		{name: "root null target met", state: `null`, target: `null`},
		{name: "root null target not met", state: `{}`, target: `null`, want: []string{""}},
		{name: "root object target vs null state", state: `null`, target: `{"a":1,"b":null}`, want: []string{"/a"}},
		{name: "root array", state: `[1,{"a":2}]`, target: `[1,{"a":2}]`},
		{name: "array elements compared whole", state: `[1,{"a":2,"b":3}]`, target: `[1,{"a":2}]`, want: []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.state == "" {
				tt.state = state
			}
			s, tg := mustParse(t, tt.state), mustParse(t, tt.target)
			if got, want := Satisfies(s, tg), len(tt.want) == 0; got != want {
				t.Errorf("Satisfies = %v, want %v", got, want)
			}
			var got []string
			for _, p := range Unsatisfied(s, tg) {
				got = append(got, p.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Unsatisfied = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestMergePatchSatisfies checks the promise that ties the two halves of
// the model together: applying a target yields a state that meets it.
func TestMergePatchSatisfies(t *testing.T) {
	docs := []string{`null`, `{}`, `3`, `{"a":{"b":1,"c":[1]},"d":"x"}`, `[1,2]`}
	targets := []string{`{}`, `null`, `[]`, `"s"`, `{"a":null}`, `{"a":{"b":null,"e":{}}}`, `{"a":{"c":[2]},"d":{"x":null}}`, `{"z":{"y":{"x":1}}}`}
	for _, d := range docs {
		for _, tg := range targets {
			target := mustParse(t, tg)
			got := MergePatch(mustParse(t, d), target)
			if !Satisfies(got, target) {
				t.Errorf("MergePatch(%s, %s) = %s does not satisfy the target; unsatisfied %q", d, tg, Canonical(got), Unsatisfied(got, target))
			}
		}
	}
}

func TestWalk(t *testing.T) {
	target := mustParse(t, `{"b":{"y":[1,{"deep":1}],"x":null},"a":1,"c":{}}`)
	var got []string
	Walk(target, func(p Pointer, v any) bool {
		got = append(got, p.String()+"="+string(Canonical(v)))
		return true
	})
	want := []string{
		`={"a":1,"b":{"x":null,"y":[1,{"deep":1}]},"c":{}}`,
		`/a=1`,
		`/b={"x":null,"y":[1,{"deep":1}]}`,
		`/b/x=null`,
		`/b/y=[1,{"deep":1}]`,
		`/c={}`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("Walk visited\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Returning false prunes below that place only.
	got = nil
	var kept []Pointer
	Walk(target, func(p Pointer, v any) bool {
		got = append(got, p.String())
		kept = append(kept, p)
		return p.String() != "/b"
	})
	if want := []string{"", "/a", "/b", "/c"}; !slices.Equal(got, want) {
		t.Errorf("pruned Walk visited %q, want %q", got, want)
	}
	// Pointers handed to fn may be kept.
	for i, p := range kept {
		if p.String() != got[i] {
			t.Errorf("kept pointer %d changed to %q, want %q", i, p, got[i])
		}
	}

	for _, leaf := range []string{`1`, `null`, `[{"a":1}]`} {
		n := 0
		Walk(mustParse(t, leaf), func(p Pointer, v any) bool { n++; return true })
		if n != 1 {
			t.Errorf("Walk(%s) visited %d places, want 1", leaf, n)
		}
	}
}
