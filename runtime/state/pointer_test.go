package state

import (
	"errors"
	"slices"
	"testing"
)

func TestParsePointer(t *testing.T) {
	tests := []struct {
		in   string
		want Pointer
	}{
		// RFC 6901 section 5.
		{"", Pointer{}},
		{"/foo", Pointer{"foo"}},
		{"/foo/0", Pointer{"foo", "0"}},
		{"/", Pointer{""}},
		{"/a~1b", Pointer{"a/b"}},
		{"/c%d", Pointer{"c%d"}},
		{"/e^f", Pointer{"e^f"}},
		{"/g|h", Pointer{"g|h"}},
		{"/i\\j", Pointer{"i\\j"}},
		{"/k\"l", Pointer{"k\"l"}},
		{"/ ", Pointer{" "}},
		{"/m~0n", Pointer{"m~n"}},
		// Escapes are decoded left to right (RFC 6901 section 4).
		{"/~01", Pointer{"~1"}},
		{"/~10", Pointer{"/0"}},
		{"/~0~1~0~1", Pointer{"~/~/"}},
		{"//", Pointer{"", ""}},
		{"/a//b/", Pointer{"a", "", "b", ""}},
		{"/relays/pump/on", Pointer{"relays", "pump", "on"}},
		{"/é/😀", Pointer{"é", "😀"}},
	}
	for _, tt := range tests {
		got, err := ParsePointer(tt.in)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParsePointer(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			continue
		}
		if s := got.String(); s != tt.in {
			t.Errorf("ParsePointer(%q).String() = %q", tt.in, s)
		}
	}
}

func TestParsePointerErrors(t *testing.T) {
	for _, in := range []string{"a", "a/b", "#/a", " /a", "/~", "/a~", "/~2", "/a~b", "/~~0", "/ok/~/x", "/~-1"} {
		p, err := ParsePointer(in)
		if !errors.Is(err, ErrInvalidPointer) {
			t.Errorf("ParsePointer(%q) = %q, %v; want ErrInvalidPointer", in, p, err)
		}
	}
}

func TestMustPointer(t *testing.T) {
	if p := MustPointer("/a~1b/0"); !slices.Equal(p, Pointer{"a/b", "0"}) {
		t.Errorf("MustPointer = %q", p)
	}
	defer func() {
		if r := recover(); r == nil {
			t.Error("MustPointer(\"x\") did not panic")
		}
	}()
	MustPointer("x")
}

func TestPointerString(t *testing.T) {
	tests := []struct {
		p    Pointer
		want string
	}{
		{nil, ""},
		{Pointer{}, ""},
		{Pointer{""}, "/"},
		{Pointer{"a", "b"}, "/a/b"},
		{Pointer{"a/b", "m~n"}, "/a~1b/m~0n"},
		{Pointer{"~1"}, "/~01"},
		{Pointer{"/~"}, "/~1~0"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("%q.String() = %q, want %q", []string(tt.p), got, tt.want)
		}
		if back, err := ParsePointer(tt.want); err != nil || !slices.Equal(back, tt.p) {
			t.Errorf("ParsePointer(%q) = %q, %v; want %q", tt.want, back, err, []string(tt.p))
		}
	}
}

func TestParent(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"/", ""},
		{"/a", ""},
		{"/a/b", "/a"},
		{"/a/b/c", "/a/b"},
	}
	for _, tt := range tests {
		if got := MustPointer(tt.in).Parent(); got.String() != tt.want {
			t.Errorf("Parent(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	// Appending to a parent must not write into the child.
	p := MustPointer("/a/b/c")
	_ = append(p.Parent(), "x")
	if p.String() != "/a/b/c" {
		t.Errorf("append to Parent changed the child to %q", p)
	}
}

func TestAppend(t *testing.T) {
	tests := []struct {
		p    string
		tok  []string
		want string
	}{
		{"", nil, ""},
		{"", []string{"a"}, "/a"},
		{"/a", []string{"b", "c"}, "/a/b/c"},
		{"/a", []string{"x/y", "~"}, "/a/x~1y/~0"},
	}
	for _, tt := range tests {
		if got := MustPointer(tt.p).Append(tt.tok...); got.String() != tt.want {
			t.Errorf("%q.Append(%q) = %q, want %q", tt.p, tt.tok, got, tt.want)
		}
	}
	// No aliasing: siblings built from one prefix stay apart, even when
	// the prefix has spare capacity.
	base := make(Pointer, 1, 8)
	base[0] = "rooms"
	x, y := base.Append("x"), base.Append("y")
	x[0] = "changed"
	if x.String() != "/changed/x" || y.String() != "/rooms/y" || base.String() != "/rooms" {
		t.Errorf("Append aliases: base %q x %q y %q", base, x, y)
	}
}

func TestHasPrefixOverlaps(t *testing.T) {
	tests := []struct {
		p, q      string
		hasPrefix bool // p.HasPrefix(q)
		overlaps  bool
	}{
		{"", "", true, true},
		{"/a", "", true, true},
		{"", "/a", false, true},
		{"/a", "/a", true, true},
		{"/a/b", "/a", true, true},
		{"/a", "/a/b", false, true},
		{"/a/b", "/a/c", false, false},
		{"/ab", "/a", false, false}, // tokens, not strings
		{"/a~1b", "/a", false, false},
		{"/a/b/c", "/a/b", true, true},
		{"/rooms/kitchen/heater", "/rooms/hall/heater", false, false},
		{"/", "", true, true},
		{"/", "/a", false, false},
	}
	for _, tt := range tests {
		p, q := MustPointer(tt.p), MustPointer(tt.q)
		if got := p.HasPrefix(q); got != tt.hasPrefix {
			t.Errorf("%q.HasPrefix(%q) = %v, want %v", tt.p, tt.q, got, tt.hasPrefix)
		}
		if got := Overlaps(p, q); got != tt.overlaps {
			t.Errorf("Overlaps(%q, %q) = %v, want %v", tt.p, tt.q, got, tt.overlaps)
		}
		if got := Overlaps(q, p); got != tt.overlaps {
			t.Errorf("Overlaps(%q, %q) = %v, want %v", tt.q, tt.p, got, tt.overlaps)
		}
	}
}
