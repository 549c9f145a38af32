package abi

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// frameOf is the frame a module decodes from c, as the host encodes it.
func frameOf(t *testing.T, c Call) *Frame {
	t.Helper()
	f := new(Frame)
	if err := DecodeCall(EncodeCall(nil, 0, c), f); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestValueAccessors(t *testing.T) {
	c := frameOf(t, Call{
		Current: json.RawMessage(`{"image": "nginx:1", "status": "running", "ports": [80, 443], "env": {"A": "1"}, "on": true, "none": null}`),
		Target:  json.RawMessage(`[1, "two", {"three": 3}]`),
	})
	cur := c.Current
	if s, ok := cur.Get("image").Str(); !ok || s != "nginx:1" {
		t.Fatalf(`Get("image") = %q, %v`, s, ok)
	}
	if n, ok := cur.Get("ports").Index(1).Num(); !ok || n != 443 {
		t.Fatalf(`ports[1] = %v, %v`, n, ok)
	}
	if b, ok := cur.Get("on").Bool(); !ok || !b {
		t.Fatalf(`on = %v, %v`, b, ok)
	}
	if !cur.Get("none").IsNull() || !cur.Get("none").Exists() {
		t.Fatal("none: want a present null")
	}
	if cur.Get("missing").Exists() || cur.Get("ports").Index(2).Exists() || cur.Get("ports").Index(-1).Exists() {
		t.Fatal("a missing key or index reads as present")
	}
	if _, ok := cur.Get("image").Num(); ok {
		t.Fatal("a string reads as a number")
	}
	if got, want := strings.Join(cur.Keys(), ","), "image,status,ports,env,on,none"; got != want {
		t.Fatalf("Keys = %s, want %s (as they came)", got, want)
	}
	if cur.Len() != 6 || cur.Get("ports").Len() != 2 || !cur.IsObject() || !cur.Get("ports").IsArray() {
		t.Fatalf("Len/IsObject/IsArray wrong")
	}
	tgt := c.Target
	if n, ok := tgt.Index(2).Get("three").Num(); !ok || n != 3 {
		t.Fatalf("target[2].three = %v, %v", n, ok)
	}
	var env struct{ A string }
	if err := cur.Get("env").Decode(&env); err != nil || env.A != "1" {
		t.Fatalf("Decode into a struct: %+v, %v", env, err)
	}
	var anything any
	if err := cur.Decode(&anything); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"image": "nginx:1", "status": "running", "ports": []any{80.0, 443.0}, "env": map[string]any{"A": "1"}, "on": true, "none": nil}
	if !reflect.DeepEqual(anything, want) {
		t.Fatalf("Decode into any = %#v", anything)
	}
	if (Value{}).Exists() || (Value{}).Decode(&anything) == nil {
		t.Fatal("the zero Value must be absent")
	}
}

// randomJSON makes a value as the state holds them.
func randomJSON(rng *rand.Rand, depth int) any {
	switch k := rng.IntN(8); {
	case k == 0:
		return nil
	case k == 1:
		return rng.IntN(2) == 1
	case k == 2:
		return float64(rng.IntN(2000)-1000) / 8
	case k == 3:
		return []string{"", "a", `q"uote`, "back\\slash", "ctl\x01", "é✓", "line\nbreak"}[rng.IntN(7)]
	case k < 6 && depth < 5:
		m := map[string]any{}
		for i := range rng.IntN(5) {
			m[fmt.Sprintf("k%d%s", i, []string{"", "/", "~", `"`}[rng.IntN(4)])] = randomJSON(rng, depth+1)
		}
		return m
	case depth < 5:
		var a []any
		for range rng.IntN(5) {
			a = append(a, randomJSON(rng, depth+1))
		}
		if a == nil {
			a = []any{}
		}
		return a
	}
	return "leaf"
}

// The three ways a value reaches a module (JSON text in a call, a state
// value read through state_read, an effect a module returns) give the same
// value back, and what a module returns passes the host's checks.
func TestTreeRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		v := randomJSON(rng, 0)
		text, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		// JSON text, as the host encodes a call.
		c := frameOf(t, Call{Current: text})
		var got any
		if err := c.Current.Decode(&got); err != nil || !reflect.DeepEqual(got, v) {
			t.Fatalf("%d: %s through a call: %#v (%v)", i, text, got, err)
		}
		// A state value, as state_read answers.
		b, err := AppendState(nil, v, true)
		if err != nil {
			t.Fatal(err)
		}
		x, rest, ok := valueAt(b)
		if !ok || len(rest) != 0 || !reflect.DeepEqual(x.tree(), v) {
			t.Fatalf("%d: %s through AppendState: %#v", i, text, x.tree())
		}
		// An effect, as a module returns it, decoded by the host.
		out, err := EncodeTry(nil, TryOut{OK: true, Effect: v})
		if err != nil {
			t.Fatal(err)
		}
		tr, modErr, err := DecodeTry(out)
		if err != nil || modErr != nil {
			t.Fatalf("%d: %s as an effect: %v %v", i, text, err, modErr)
		}
		var back any
		if err := json.Unmarshal(tr.Effect, &back); err != nil || !reflect.DeepEqual(back, v) {
			t.Fatalf("%d: %s as an effect came back as %s", i, text, tr.Effect)
		}
	}
}

// A module's answer is outside input: malformed trees are refused with a
// clear error, never a panic.
func TestTreeFromModuleChecked(t *testing.T) {
	good, _ := EncodeTry(nil, TryOut{OK: true, Effect: map[string]any{"a": []any{1.0, "x"}}})
	bad := map[string][]byte{
		"count too large":   {statusOK, 1, 0, 0, tagObject, 4, 0, 0, 0, 0xff, 0, 0, 0},
		"bad key UTF-8":     append([]byte{statusOK, 1, 0, 0, tagObject, 14, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0xff}, tagNumber, 0, 0, 0, 0, 0, 0, 0, 0),
		"trailing in body":  {statusOK, 1, 0, 0, tagArray, 6, 0, 0, 0, 1, 0, 0, 0, tagNull, tagNull},
		"absent inside":     {statusOK, 1, 0, 0, tagArray, 5, 0, 0, 0, 1, 0, 0, 0, tagAbsent},
		"unknown tag":       {statusOK, 1, 0, 0, tagArray, 5, 0, 0, 0, 1, 0, 0, 0, 42},
		"body past the end": {statusOK, 1, 0, 0, tagArray, 50, 0, 0, 0, 1, 0, 0, 0, tagNull},
	}
	deep := []byte{statusOK, 1, 0, 0}
	var nest func(d int) []byte
	nest = func(d int) []byte {
		if d == 0 {
			return []byte{tagNull}
		}
		inner := nest(d - 1)
		b := []byte{tagArray}
		b = appendU32(b, 4+len(inner))
		b = appendU32(b, 1)
		return append(b, inner...)
	}
	bad["too deep"] = append(deep, nest(maxTreeDepth+2)...)
	for name, b := range bad {
		if _, _, err := DecodeTry(b); err == nil {
			t.Errorf("%s: accepted %x", name, b)
		}
	}
	if _, _, err := DecodeTry(good); err != nil {
		t.Fatalf("a good tree refused: %v", err)
	}
}

type decodeRoom struct {
	Temp    *float64          `json:"temp"`
	Heater  bool              `json:"heater"`
	Sensor  string            `json:"sensor,omitempty"`
	Count   int               `json:"count"`
	Small   uint8             `json:"small"`
	Tags    []string          `json:"tags"`
	Env     map[string]string `json:"env"`
	Any     any               `json:"any"`
	Raw     json.RawMessage   `json:"raw"`
	Skipped string            `json:"-"`
	Pair    [2]float64        `json:"pair"`
	Inner   *struct {
		Name string
	} `json:"inner"`
	NoTag float64
}

// Decoding a tree into a struct agrees with encoding/json on the same
// JSON: the values stored, and whether it is an error.
func TestDecodeAgreesWithEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	fields := []string{"temp", "heater", "sensor", "count", "small", "tags", "env", "any", "raw", "Skipped", "-", "pair", "inner", "NOTAG", "notag", "extra"}
	values := []string{`null`, `true`, `1`, `2.5`, `-3`, `300`, `"s"`, `["a","b"]`, `[1,2]`, `{"a":"x"}`, `{"Name":"n","name":"m"}`, `{"nAME":"k"}`, `[]`, `{}`, `[1,2,3]`}
	for i := range 5000 {
		var b strings.Builder
		b.WriteString("{")
		for j := range rng.IntN(5) {
			if j > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "%q:%s", fields[rng.IntN(len(fields))], values[rng.IntN(len(values))])
		}
		b.WriteString("}")
		text := b.String()
		var want, got decodeRoom
		wantErr := json.Unmarshal([]byte(text), &want)
		c := frameOf(t, Call{Current: json.RawMessage(text)})
		gotErr := c.Current.Decode(&got)
		if (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("%d: %s: encoding/json says %v, the tree decoder %v", i, text, wantErr, gotErr)
		}
		if wantErr == nil && !reflect.DeepEqual(want, got) {
			t.Fatalf("%d: %s:\nencoding/json %+v\ntree decoder  %+v", i, text, want, got)
		}
	}
}

// WithTarget writes the JSON encoding/json would.
func TestWithTarget(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 500 {
		v := randomJSON(rng, 0)
		want, _ := json.Marshal(v)
		got := TaskRef{Job: "j", Path: "/p"}.WithTarget(v).Target
		var a, b any
		if json.Unmarshal(want, &a) != nil || json.Unmarshal(got, &b) != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("WithTarget(%#v) = %s, want %s", v, got, want)
		}
	}
	type point struct{ X, Y int }
	if got := string(TaskRef{Job: "j", Path: "/p"}.WithTarget(point{1, 2}).Target); got != `{"X":1,"Y":2}` {
		t.Fatalf("a struct: %s", got)
	}
	if got := string(TaskRef{Job: "j", Path: Here}.WithTarget(nil).Target); got != "null" {
		t.Fatalf("nil: %s", got)
	}
}
