package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

func FuzzParsePointer(f *testing.F) {
	for _, s := range []string{"", "/", "//", "/foo/0", "/a~1b", "/m~0n", "/~01", "/~", "/~2", "a", "/i\\j", "/k\"l", "/é/😀", "/a/b/c/-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePointer(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidPointer) {
				t.Fatalf("ParsePointer(%q) error %v does not wrap ErrInvalidPointer", s, err)
			}
		} else if got := p.String(); got != s {
			// A valid pointer has exactly one spelling.
			t.Fatalf("ParsePointer(%q).String() = %q", s, got)
		}

		// Any tokens at all survive String and ParsePointer.
		toks := Pointer(strings.Split(s, "~"))
		back, err := ParsePointer(toks.String())
		if err != nil || !slices.Equal(back, toks) {
			t.Fatalf("ParsePointer(%q) = %q, %v; want %q", toks.String(), back, err, []string(toks))
		}
	})
}

func FuzzParsePattern(f *testing.F) {
	for _, s := range []string{"", "/", "/relays/:name", "/rooms/:room/heater", "/:a/:a", "/:", "/a~1b/:x~1y", "/~2", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePattern(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidPattern) {
				t.Fatalf("ParsePattern(%q) error %v does not wrap ErrInvalidPattern", s, err)
			}
			return
		}
		if got := p.String(); got != s {
			t.Fatalf("ParsePattern(%q).String() = %q", s, got)
		}
		// A pattern matches the pointer spelled like it, binding each
		// parameter to its own spelling.
		ptr := MustPointer(s)
		params, ok := p.Match(ptr)
		if !ok || len(ptr) != p.Len() {
			t.Fatalf("%q does not match itself as a pointer", s)
		}
		for k, v := range params {
			if v != ":"+k {
				t.Fatalf("%q.Match(itself) bound %q to %q", s, k, v)
			}
		}
	})
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`null`, `true`, `0`, `-1.5e-7`, `"a\u00e9\ud83d\ude00"`, `[]`, `{}`, rfc6901Doc,
		`{"relays":{"pump":{"on":true,"pin":17}},"rooms":[{"name":"hall","t":21.5}]}`,
		`{"a":1,"a":2}`, `[1,2`, `{"a" 1}`, `1 2`, "\"\xff\"", `1e400`, `"\ud800"`,
		`-0`, `01`, `1.`, `-`, "\"tab\there\"", `"é"`, `"a"b"`, `""`, `"`,
		strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth),
		strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// The scalar fast path agrees with the full parse.
		if fast, ok := parseScalar(b); ok {
			var want any
			if err := checkText(b); err != nil || json.Unmarshal(b, &want) != nil || !Equal(fast, want) {
				t.Fatalf("parseScalar(%q) = %#v, the full parse %#v (%v)", b, fast, want, err)
			}
		}
		v, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrTooDeep) {
				t.Fatalf("Parse error %v wraps neither ErrSyntax nor ErrTooDeep", err)
			}
			return
		}
		c := Canonical(v)
		if c == nil {
			t.Fatalf("Canonical of a parsed document failed: %#v", v)
		}
		v2, err := Parse(c)
		if err != nil {
			t.Fatalf("Parse(Canonical(v)) = %v; canonical %s", err, c)
		}
		if !Equal(v, v2) {
			t.Fatalf("re-parsed document differs: %s", c)
		}
		if c2 := Canonical(v2); !bytes.Equal(c, c2) {
			t.Fatalf("Canonical is not stable: %s then %s", c, c2)
		}
		if Hash(v) != Hash(v2) || Hash(v) != Hash(Clone(v)) {
			t.Fatalf("equal documents hash differently: %s", c)
		}
		if !Equal(Clone(v), v) {
			t.Fatalf("a document does not equal its clone: %s", c)
		}
		if !hasNull(v) && !Satisfies(v, v) {
			t.Fatalf("a document without nulls does not satisfy itself: %s", c)
		}
	})
}

// hasNull reports whether an object in v holds a null, which as a target
// means "absent" and so a document with one need not satisfy itself.
func hasNull(v any) bool {
	found := false
	Walk(v, func(p Pointer, x any) bool {
		found = found || (x == nil && len(p) > 0)
		return !found
	})
	return found
}

func FuzzMergePatch(f *testing.F) {
	for _, s := range [][2]string{
		{`{"a":"b"}`, `{"a":"c"}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`},
		{`[1,2]`, `{"a":"b","c":null}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`},
		{`{"e":null}`, `{"a":1}`},
		{`{"a":"foo"}`, `null`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`},
		{`{"relays":{"pump":{"on":false,"pin":17}},"debug":true}`, `{"relays":{"pump":{"on":true},"fan":{"on":null}},"debug":null}`},
	} {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	f.Fuzz(func(t *testing.T, docText, patchText []byte) {
		doc, err := Parse(docText)
		if err != nil {
			return
		}
		patch, err := Parse(patchText)
		if err != nil {
			return
		}
		before := Clone(patch)
		got := MergePatch(doc, patch)
		if !Equal(patch, before) {
			t.Fatalf("MergePatch changed the patch from %s to %s", Canonical(before), Canonical(patch))
		}
		// Applying a target always meets it. For an object patch that is the
		// promise the planner relies on; for any other patch the result is
		// the patch itself, which meets it too.
		if !Satisfies(got, patch) {
			t.Fatalf("MergePatch(%s, %s) = %s does not satisfy the patch; unsatisfied %q",
				docText, patchText, Canonical(got), Unsatisfied(got, patch))
		}
		if u := Unsatisfied(got, patch); len(u) != 0 {
			t.Fatalf("Satisfies holds but Unsatisfied = %q", u)
		}
		// Applying it again changes nothing (merge patches are idempotent).
		if again := MergePatch(Clone(got), patch); !Equal(again, got) {
			t.Fatalf("MergePatch is not idempotent: %s then %s", Canonical(got), Canonical(again))
		}
		// The result shares no memory with the patch.
		scramble(got)
		if !Equal(patch, before) {
			t.Fatalf("changing the result changed the patch to %s", Canonical(patch))
		}
	})
}
