package state

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

// mustParse parses a test document or fails the test.
func mustParse(t testing.TB, s string) any {
	t.Helper()
	v, err := Parse([]byte(s))
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return v
}

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want any
	}{
		{`null`, nil},
		{` true `, true},
		{`false`, false},
		{`0`, 0.0},
		{`-1.5e3`, -1500.0},
		{`"a\u00e9\n"`, "aé\n"},
		{`[]`, []any{}},
		{`{}`, map[string]any{}},
		{"\t[1, \"x\", null, {\"k\": [true]}]\r\n", []any{1.0, "x", nil, map[string]any{"k": []any{true}}}},
		{`{"a":1,"a":2}`, map[string]any{"a": 2.0}}, // last duplicate wins
		{`{"x":{"y":{"z":"deep"}}}`, map[string]any{"x": map[string]any{"y": map[string]any{"z": "deep"}}}},
		{`"[[[{{{"`, "[[[{{{"}, // brackets in strings do not nest
		{`"\"[["`, `"[[`},
		{strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth), nest(MaxDepth)},
	}
	for _, tt := range tests {
		got, err := Parse([]byte(tt.in))
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if !Equal(got, tt.want) {
			t.Errorf("Parse(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
	}
}

// nest returns n nested empty arrays.
func nest(n int) any {
	var v any = []any{}
	for range n - 1 {
		v = []any{v}
	}
	return v
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in   string
		want error
		at   string // "at offset N" the message must contain
	}{
		{``, ErrSyntax, "at offset 0"},
		{`   `, ErrSyntax, "at offset 3"},
		{`nul`, ErrSyntax, "at offset 3"},
		{`[1,2`, ErrSyntax, "at offset 4"},
		{`{"a":1,}`, ErrSyntax, "at offset 8"},
		{`{"a" 1}`, ErrSyntax, "at offset 6"},
		{`1 2`, ErrSyntax, "at offset 3"},
		{`{} {}`, ErrSyntax, "at offset 4"},
		{`[1]x`, ErrSyntax, "at offset 4"},
		{`'a'`, ErrSyntax, "at offset 1"},
		{`01`, ErrSyntax, "at offset 2"},
		{`1e400`, ErrSyntax, "at offset 5"},
		{`{"a":-1e400,"b":1}`, ErrSyntax, "at offset "},
		{"\"a\xffb\"", ErrSyntax, "at offset 2"},
		{"{\"\xc3\":1}", ErrSyntax, "at offset 2"},
		{strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), ErrTooDeep, "at offset 64"},
		{`{"a":` + strings.Repeat(`{"b":`, MaxDepth) + "1" + strings.Repeat("}", MaxDepth+1), ErrTooDeep, "at offset 320"},
		{strings.Repeat("[", 100000), ErrTooDeep, "at offset 64"},
	}
	for _, tt := range tests {
		v, err := Parse([]byte(tt.in))
		if !errors.Is(err, tt.want) {
			t.Errorf("Parse(%.40q) = %v, %v; want %v", tt.in, v, err, tt.want)
			continue
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "state: ") || !strings.Contains(msg, tt.at) {
			t.Errorf("Parse(%.40q) error %q, want it to start with \"state: \" and contain %q", tt.in, msg, tt.at)
		}
	}
}

func TestClone(t *testing.T) {
	tests := []string{`null`, `1`, `"s"`, `true`, `[]`, `{}`, `{"a":[1,{"b":null}],"c":{"d":"e"}}`, `[[[]],{}]`}
	for _, in := range tests {
		orig := mustParse(t, in)
		c := Clone(orig)
		if !Equal(c, orig) {
			t.Errorf("Clone(%s) = %#v", in, c)
		}
		scramble(c)
		if !Equal(orig, mustParse(t, in)) {
			t.Errorf("changing Clone(%s) changed the original to %s", in, Canonical(orig))
		}
	}
}

// scramble overwrites every element of every object and array in v, to
// show up memory that v shares with something else.
func scramble(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			scramble(x)
			v[k] = "scrambled"
		}
		v["scrambled"] = true
	case []any:
		for i, x := range v {
			scramble(x)
			v[i] = "scrambled"
		}
	}
}

func TestEqual(t *testing.T) {
	tests := []struct {
		a, b any
		want bool
	}{
		{nil, nil, true},
		{nil, false, false},
		{nil, 0.0, false},
		{nil, "", false},
		{nil, map[string]any{}, false},
		{true, true, true},
		{true, false, false},
		{true, 1.0, false},
		{"a", "a", true},
		{"a", "b", false},
		{"1", 1.0, false},
		{1.0, 1.0, true},
		{1.0, 2.0, false},
		{0.0, math.Copysign(0, -1), true},
		{1.0, 1, true},
		{uint8(3), 3.0, true},
		{int64(-2), float32(-2), true},
		{json.Number("2.5"), 2.5, true},
		{json.Number("x"), 0.0, false},
		{1, "1", false},
		{struct{}{}, struct{}{}, false}, // outside the model
		{[]any{}, []any{}, true},
		{[]any{}, map[string]any{}, false},
		{[]any{1.0, "a"}, []any{1.0, "a"}, true},
		{[]any{1.0, "a"}, []any{"a", 1.0}, false},
		{[]any{1.0}, []any{1.0, 1.0}, false},
		{[]any{nil}, []any{}, false},
		{map[string]any{}, map[string]any{}, true},
		{map[string]any{"a": nil}, map[string]any{}, false},
		{map[string]any{"a": nil}, map[string]any{"b": nil}, false},
		{map[string]any{"a": 1.0, "b": []any{true}}, map[string]any{"b": []any{true}, "a": 1.0}, true},
		{map[string]any{"a": map[string]any{"b": 1.0}}, map[string]any{"a": map[string]any{"b": 2.0}}, false},
	}
	for _, tt := range tests {
		if got := Equal(tt.a, tt.b); got != tt.want {
			t.Errorf("Equal(%#v, %#v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := Equal(tt.b, tt.a); got != tt.want {
			t.Errorf("Equal(%#v, %#v) = %v, want %v (symmetry)", tt.b, tt.a, got, tt.want)
		}
	}
}

func TestHash(t *testing.T) {
	same := [][2]any{
		{mustParse(t, `{"a":1,"b":[1,2,{"c":"d"}]}`), mustParse(t, `{"b":[1,2,{"c":"d"}],"a":1}`)},
		{0.0, math.Copysign(0, -1)},
		{3.0, 3},
		{map[string]any{"n": 7.0}, map[string]any{"n": uint16(7)}},
		{nil, nil},
		{"a long string of more than eight bytes", "a long string of more than eight bytes"},
	}
	for _, p := range same {
		if Hash(p[0]) != Hash(p[1]) {
			t.Errorf("Hash(%s) != Hash(%s)", Canonical(p[0]), Canonical(p[1]))
		}
	}
	// Values that differ, including ones a naive encoding would confuse,
	// hash apart.
	distinct := []string{
		`null`, `false`, `true`, `0`, `1`, `-1`, `0.5`, `""`, `"0"`, `"null"`, `"a"`, `"b"`, `"ab"`,
		`"a\u0000"`, `"12345678"`, `"123456789"`, `[]`, `{}`, `[null]`, `[[]]`, `[{}]`, `{"":null}`,
		`["a","b"]`, `["ab"]`, `["b","a"]`, `[1,2]`, `[2,1]`, `{"a":1}`, `{"a":2}`, `{"b":1}`,
		`{"a":"b"}`, `{"ab":""}`, `{"a":{"b":1}}`, `{"a":{},"b":1}`, `{"a":[1]}`, `{"a":1,"b":2}`,
		`{"a":2,"b":1}`, `[[1],2]`, `[1,[2]]`,
	}
	seen := map[uint64]string{}
	for _, s := range distinct {
		h := Hash(mustParse(t, s))
		if prev, ok := seen[h]; ok {
			t.Errorf("Hash(%s) == Hash(%s) = %#x", s, prev, h)
		}
		seen[h] = s
	}
	// Hash promises the same value in every process and on every platform:
	// pin two so an accidental change shows.
	for in, want := range map[string]uint64{
		`{"relays":{"pump":{"on":true}}}`: 0x2129b3f1af5f5648,
		`[1,"a",null,false,{"b":2.5}]`:    0x38b5848d45a78d31,
	} {
		if got := Hash(mustParse(t, in)); got != want {
			t.Errorf("Hash(%s) = %#x, want %#x", in, got, want)
		}
	}
}

func TestCanonical(t *testing.T) {
	tests := []struct {
		in   any
		want string
	}{
		{nil, `null`},
		{mustParse(t, ` { "b" : [ 1 , 2.5 , "x" ] , "a" : { "d" : null , "c" : true } } `), `{"a":{"c":true,"d":null},"b":[1,2.5,"x"]}`},
		{1e21, `1e+21`},
		{"<&>", `"\u003c\u0026\u003e"`},
		{3, `3`},
		{math.NaN(), ``}, // JSON cannot hold it
	}
	for _, tt := range tests {
		if got := string(Canonical(tt.in)); got != tt.want {
			t.Errorf("Canonical(%#v) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
