package state

import (
	"errors"
	"testing"
)

// rfc6901Doc is the example document of RFC 6901 section 5.
const rfc6901Doc = `{
	"foo": ["bar", "baz"],
	"": 0,
	"a/b": 1,
	"c%d": 2,
	"e^f": 3,
	"g|h": 4,
	"i\\j": 5,
	"k\"l": 6,
	" ": 7,
	"m~n": 8
}`

func TestGetRFC6901(t *testing.T) {
	doc := mustParse(t, rfc6901Doc)
	tests := []struct {
		ptr  string
		want string // JSON
	}{
		{``, rfc6901Doc},
		{`/foo`, `["bar", "baz"]`},
		{`/foo/0`, `"bar"`},
		{`/`, `0`},
		{`/a~1b`, `1`},
		{`/c%d`, `2`},
		{`/e^f`, `3`},
		{`/g|h`, `4`},
		{`/i\j`, `5`},
		{`/k"l`, `6`},
		{`/ `, `7`},
		{`/m~0n`, `8`},
	}
	for _, tt := range tests {
		got, ok := Get(doc, MustPointer(tt.ptr))
		if !ok || !Equal(got, mustParse(t, tt.want)) {
			t.Errorf("Get(%q) = %s, %v; want %s", tt.ptr, Canonical(got), ok, tt.want)
		}
	}
}

func TestGet(t *testing.T) {
	doc := mustParse(t, `{"a":{"b":[10,{"c":null}],"s":"str"},"n":null}`)
	tests := []struct {
		ptr  string
		want string // JSON, or "" for not found
	}{
		{`/a/b/0`, `10`},
		{`/a/b/1/c`, `null`},
		{`/n`, `null`},
		{`/a/s`, `"str"`},
		{`/a/b/2`, ``},
		{`/a/b/-`, ``},
		{`/a/b/01`, ``},
		{`/a/b/+1`, ``},
		{`/a/b/-1`, ``},
		{`/a/b/1e0`, ``},
		{`/a/b/99999999999999999999999`, ``},
		{`/a/b/x`, ``},
		{`/a/s/0`, ``},
		{`/n/x`, ``},
		{`/missing`, ``},
		{`/a/b/1/c/d`, ``},
	}
	for _, tt := range tests {
		got, ok := Get(doc, MustPointer(tt.ptr))
		if tt.want == "" {
			if ok {
				t.Errorf("Get(%q) = %s, want not found", tt.ptr, Canonical(got))
			}
			continue
		}
		if !ok || !Equal(got, mustParse(t, tt.want)) {
			t.Errorf("Get(%q) = %s, %v; want %s", tt.ptr, Canonical(got), ok, tt.want)
		}
	}
}

func TestSet(t *testing.T) {
	tests := []struct {
		doc, ptr, val string
		want          string // resulting document
		err           error
	}{
		{`{"a":1}`, ``, `[1]`, `[1]`, nil},
		{`null`, ``, `{}`, `{}`, nil},
		{`{"a":1}`, `/a`, `2`, `{"a":2}`, nil},
		{`{"a":1}`, `/b`, `null`, `{"a":1,"b":null}`, nil},
		{`{}`, `/a/b/c`, `true`, `{"a":{"b":{"c":true}}}`, nil},
		{`null`, `/a/b`, `1`, `{"a":{"b":1}}`, nil},
		{`{"a":null}`, `/a/b`, `1`, `{"a":{"b":1}}`, nil},
		{`{"a":{"x":0}}`, `/a/b`, `1`, `{"a":{"x":0,"b":1}}`, nil},
		{`{"a":[1,2,3]}`, `/a/1`, `"two"`, `{"a":[1,"two",3]}`, nil},
		{`{"a":[1,2,3]}`, `/a/-`, `4`, `{"a":[1,2,3,4]}`, nil},
		{`{"a":[]}`, `/a/-`, `4`, `{"a":[4]}`, nil},
		{`{"a":[]}`, `/a/-/b`, `4`, `{"a":[{"b":4}]}`, nil},
		{`[0]`, `/-`, `1`, `[0,1]`, nil},
		{`[{"x":1}]`, `/0/y`, `2`, `[{"x":1,"y":2}]`, nil},
		{`{"":{"a/b":{}}}`, `//a~1b/m~0n`, `8`, `{"":{"a/b":{"m~n":8}}}`, nil},
		{`{"a":[1,2,3]}`, `/a/3`, `4`, `{"a":[1,2,3]}`, ErrIndex},
		{`{"a":[1,2,3]}`, `/a/01`, `4`, `{"a":[1,2,3]}`, ErrIndex},
		{`{"a":[1,2,3]}`, `/a/x`, `4`, `{"a":[1,2,3]}`, ErrIndex},
		{`{"a":[1,2,3]}`, `/a/5/b`, `4`, `{"a":[1,2,3]}`, ErrIndex},
		{`{"a":"s"}`, `/a/b`, `1`, `{"a":"s"}`, ErrNotContainer},
		{`{"a":{"b":1}}`, `/a/b/c/d`, `1`, `{"a":{"b":1}}`, ErrNotContainer},
		{`{"a":[true]}`, `/a/0/x`, `1`, `{"a":[true]}`, ErrNotContainer},
		{`3`, `/a`, `1`, `3`, ErrNotContainer},
	}
	for _, tt := range tests {
		doc := mustParse(t, tt.doc)
		got, err := Set(doc, MustPointer(tt.ptr), mustParse(t, tt.val))
		if !errors.Is(err, tt.err) {
			t.Errorf("Set(%s, %q, %s) error %v, want %v", tt.doc, tt.ptr, tt.val, err, tt.err)
			continue
		}
		if !Equal(got, mustParse(t, tt.want)) {
			t.Errorf("Set(%s, %q, %s) = %s, want %s", tt.doc, tt.ptr, tt.val, Canonical(got), tt.want)
		}
		if err != nil && !Equal(doc, mustParse(t, tt.doc)) {
			t.Errorf("failed Set(%s, %q, %s) changed doc to %s", tt.doc, tt.ptr, tt.val, Canonical(doc))
		}
	}
}

func TestSetInPlace(t *testing.T) {
	doc := mustParse(t, `{"a":{"b":1}}`)
	inner, _ := Get(doc, MustPointer("/a"))
	root, err := Set(doc, MustPointer("/a/c"), 2.0)
	if err != nil {
		t.Fatal(err)
	}
	// The old root and inner object see the change: callers Clone first.
	if !Equal(inner, mustParse(t, `{"b":1,"c":2}`)) || !Equal(doc, root) {
		t.Errorf("Set did not change the document in place: doc %s, root %s", Canonical(doc), Canonical(root))
	}
}

func TestDelete(t *testing.T) {
	tests := []struct {
		doc, ptr string
		want     string
		err      error
	}{
		{`{"a":1}`, ``, `null`, nil},
		{`{"a":1,"b":2}`, `/a`, `{"b":2}`, nil},
		{`{"a":{"b":1,"c":2}}`, `/a/b`, `{"a":{"c":2}}`, nil},
		{`{"a":null}`, `/a`, `{}`, nil},
		{`{"a":1}`, `/x`, `{"a":1}`, nil},
		{`{"a":1}`, `/x/y/z`, `{"a":1}`, nil},
		{`{"a":null}`, `/a/b`, `{"a":null}`, nil},
		{`null`, `/a`, `null`, nil},
		{`{"a":[1,2,3]}`, `/a/0`, `{"a":[2,3]}`, nil},
		{`{"a":[1,2,3]}`, `/a/1`, `{"a":[1,3]}`, nil},
		{`{"a":[1,2,3]}`, `/a/2`, `{"a":[1,2]}`, nil},
		{`{"a":[1,2,3]}`, `/a/3`, `{"a":[1,2,3]}`, nil},
		{`{"a":[1,2,3]}`, `/a/-`, `{"a":[1,2,3]}`, nil},
		{`{"a":[1,2,3]}`, `/a/x`, `{"a":[1,2,3]}`, nil},
		{`{"a":[{"b":1,"c":2}]}`, `/a/0/b`, `{"a":[{"c":2}]}`, nil},
		{`[[1,2]]`, `/0/0`, `[[2]]`, nil},
		{`[1]`, `/0`, `[]`, nil},
		{`{"a":"s"}`, `/a/b`, `{"a":"s"}`, ErrNotContainer},
		{`{"a":[true]}`, `/a/0/b`, `{"a":[true]}`, ErrNotContainer},
		{`1`, `/a`, `1`, ErrNotContainer},
	}
	for _, tt := range tests {
		got, err := Delete(mustParse(t, tt.doc), MustPointer(tt.ptr))
		if !errors.Is(err, tt.err) {
			t.Errorf("Delete(%s, %q) error %v, want %v", tt.doc, tt.ptr, err, tt.err)
			continue
		}
		if !Equal(got, mustParse(t, tt.want)) {
			t.Errorf("Delete(%s, %q) = %s, want %s", tt.doc, tt.ptr, Canonical(got), tt.want)
		}
	}
}

func TestMergePatchRFC7386(t *testing.T) {
	// RFC 7386 Appendix A, every example.
	tests := []struct{ doc, patch, want string }{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`["a","b"]`, `["c","d"]`, `["c","d"]`},
		{`{"a":"b"}`, `["c"]`, `["c"]`},
		{`{"a":"foo"}`, `null`, `null`},
		{`{"a":"foo"}`, `"bar"`, `"bar"`},
		{`{"e":null}`, `{"a":1}`, `{"e":null,"a":1}`},
		{`[1,2]`, `{"a":"b","c":null}`, `{"a":"b"}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
	}
	for _, tt := range tests {
		patch := mustParse(t, tt.patch)
		got := MergePatch(mustParse(t, tt.doc), patch)
		if !Equal(got, mustParse(t, tt.want)) {
			t.Errorf("MergePatch(%s, %s) = %s, want %s", tt.doc, tt.patch, Canonical(got), tt.want)
		}
		if !Equal(patch, mustParse(t, tt.patch)) {
			t.Errorf("MergePatch(%s, %s) changed the patch to %s", tt.doc, tt.patch, Canonical(patch))
		}
	}
}

func TestMergePatchSharesNothing(t *testing.T) {
	tests := []struct{ doc, patch string }{
		{`{}`, `{"a":{"b":[1,{"c":2}]},"d":null}`},
		{`{"a":{"x":1}}`, `{"a":{"b":{"c":{}}}}`},
		{`null`, `[{"a":[]}]`},
		{`{"a":1}`, `{"a":{"b":[[]]}}`},
	}
	for _, tt := range tests {
		patch := mustParse(t, tt.patch)
		got := MergePatch(mustParse(t, tt.doc), patch)
		scramble(got)
		if !Equal(patch, mustParse(t, tt.patch)) {
			t.Errorf("MergePatch(%s, %s): changing the result changed the patch to %s", tt.doc, tt.patch, Canonical(patch))
		}
	}
}
