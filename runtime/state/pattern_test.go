package state

import (
	"errors"
	"maps"
	"testing"
)

func TestParsePattern(t *testing.T) {
	tests := []struct {
		in     string
		length int
	}{
		{"", 0},
		{"/", 1},
		{"/relays/:name", 2},
		{"/rooms/:room/heater", 3},
		{"/:a/:b/:c", 3},
		{"/a~1b/:x~1y/m~0n", 3},
		{"/a:b/x:", 2}, // ":" only counts at the start of a token
	}
	for _, tt := range tests {
		p, err := ParsePattern(tt.in)
		if err != nil {
			t.Errorf("ParsePattern(%q): %v", tt.in, err)
			continue
		}
		if p.String() != tt.in || p.Len() != tt.length {
			t.Errorf("ParsePattern(%q) = %q with Len %d, want Len %d", tt.in, p, p.Len(), tt.length)
		}
	}
}

func TestParsePatternErrors(t *testing.T) {
	for _, in := range []string{"relays/:name", ":name", "/relays/:", "/:", "/:a/:a", "/:a/x/:a", "/a/~2", "/:a~"} {
		p, err := ParsePattern(in)
		if !errors.Is(err, ErrInvalidPattern) {
			t.Errorf("ParsePattern(%q) = %q, %v; want ErrInvalidPattern", in, p, err)
		}
	}
}

func TestPatternMatch(t *testing.T) {
	tests := []struct {
		pattern, ptr string
		want         map[string]string // nil with ok false means no match
		ok           bool
	}{
		{"", "", nil, true},
		{"", "/a", nil, false},
		{"/relays", "/relays", nil, true},
		{"/relays", "/relay", nil, false},
		{"/relays/:name", "/relays/pump", map[string]string{"name": "pump"}, true},
		{"/relays/:name", "/relays/a~1b", map[string]string{"name": "a/b"}, true},
		{"/relays/:name", "/relays/", map[string]string{"name": ""}, true},
		{"/relays/:name", "/relays", nil, false},
		{"/relays/:name", "/relays/pump/on", nil, false},
		{"/relays/:name", "/valves/pump", nil, false},
		{"/rooms/:room/heater", "/rooms/kitchen/heater", map[string]string{"room": "kitchen"}, true},
		{"/rooms/:room/heater", "/rooms/kitchen/fan", nil, false},
		{"/:a/:b", "/x/y", map[string]string{"a": "x", "b": "y"}, true},
		{"/a~1b/:k", "/a~1b/v", map[string]string{"k": "v"}, true},
		{"/a~1b/:k", "/a/b/v", nil, false},
	}
	for _, tt := range tests {
		params, ok := mustPattern(t, tt.pattern).Match(MustPointer(tt.ptr))
		if ok != tt.ok || !maps.Equal(params, tt.want) {
			t.Errorf("%q.Match(%q) = %v, %v; want %v, %v", tt.pattern, tt.ptr, params, ok, tt.want, tt.ok)
		}
	}
}

// mustPattern parses a test pattern or fails the test.
func mustPattern(t testing.TB, s string) Pattern {
	t.Helper()
	p, err := ParsePattern(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPatternOverlaps(t *testing.T) {
	for _, c := range []struct {
		pattern, ptr string
		want         bool
	}{
		{"/relays/:name", "/relays", true},
		{"/relays/:name", "/relays/heater", true},
		{"/relays/:name", "/relays/heater/on", true},
		{"/relays/:name", "", true},
		{"/relays/:name", "/relaysx", false},
		{"/relays/:name", "/room", false},
		{"/room/heater", "/room/sensor", false},
		{"/room", "/room/heater", true},
		{"", "/anything", true},
	} {
		p, err := ParsePattern(c.pattern)
		if err != nil {
			t.Fatal(err)
		}
		ptr, err := ParsePointer(c.ptr)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Overlaps(ptr); got != c.want {
			t.Errorf("%q overlaps %q = %v, want %v", c.pattern, c.ptr, got, c.want)
		}
	}
}
