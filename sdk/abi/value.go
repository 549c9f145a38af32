package abi

import (
	"encoding/json"
	"fmt"
)

// Value is a read-only view of a JSON value in its wire form: in the Go
// SDK, the current or target value a job was called with
// (Context.CurrentValue, TargetValue) or another path's value read from
// the state (Context.Read). Reading a field decodes only what it reads,
// without encoding/json: a condition that looks at one field of a large
// object costs that field. A Value views the bytes it was decoded from
// (for a job, until the job returns); keep what you need with Decode or
// the accessors. The zero Value is absent.
type Value struct{ v value }

// Exists reports whether the value is present (the path exists, the key is
// in the object, the index is in the array).
func (x Value) Exists() bool { return x.v.tag != tagAbsent }

// IsNull reports whether the value is JSON null.
func (x Value) IsNull() bool { return x.v.tag == tagNull }

// Num returns a number; ok is false for anything else.
func (x Value) Num() (float64, bool) { return x.v.num, x.v.tag == tagNumber }

// Str returns a string; ok is false for anything else.
func (x Value) Str() (string, bool) {
	if x.v.tag != tagString {
		return "", false
	}
	return string(x.v.data), true
}

// Bool returns true or false; ok is false for anything else.
func (x Value) Bool() (bool, bool) {
	return x.v.tag == tagTrue, x.v.tag == tagTrue || x.v.tag == tagFalse
}

// IsObject and IsArray report the value's kind.
func (x Value) IsObject() bool {
	return x.v.tag == tagObject || x.v.tag == tagJSON && len(x.v.data) > 0 && x.v.data[0] == '{'
}

// IsArray: see IsObject.
func (x Value) IsArray() bool {
	return x.v.tag == tagArray || x.v.tag == tagJSON && len(x.v.data) > 0 && x.v.data[0] == '['
}

// Len is the number of an object's keys or an array's elements, 0 for
// anything else.
func (x Value) Len() int { return x.tree().count() }

// Get returns an object's value at key; absent if there is none or x is
// not an object.
func (x Value) Get(key string) Value {
	v := x.tree()
	if v.tag != tagObject {
		return Value{}
	}
	var out Value
	v.entries(func(k []byte, e value) bool {
		if string(k) == key {
			out = Value{e}
			return false
		}
		return true
	})
	return out
}

// Index returns an array's element i; absent if out of range or x is not
// an array.
func (x Value) Index(i int) Value {
	v := x.tree()
	if v.tag != tagArray || i < 0 {
		return Value{}
	}
	var out Value
	n := 0
	v.entries(func(_ []byte, e value) bool {
		if n == i {
			out = Value{e}
			return false
		}
		n++
		return true
	})
	return out
}

// Keys lists an object's keys in the order they came (the host sends
// them sorted).
func (x Value) Keys() []string {
	v := x.tree()
	if v.tag != tagObject {
		return nil
	}
	keys := make([]string, 0, v.count())
	v.entries(func(k []byte, _ value) bool { keys = append(keys, string(k)); return true })
	return keys
}

// Decode stores the value in p, as encoding/json would: *any,
// *map[string]any, *[]any and the scalar types (*float64, *int, *string,
// *bool) are decoded directly; other types (structs) go through
// encoding/json.
func (x Value) Decode(p any) error {
	if x.v.tag == tagAbsent {
		return fmt.Errorf("sdk: no value")
	}
	return x.v.decode(p)
}

// JSON returns the value as JSON text (nil if absent).
func (x Value) JSON() json.RawMessage { return x.v.json() }

// tree is the value with a JSON-text object or array (from an older host)
// turned into the wire form, so the accessors need one code path.
func (x Value) tree() value {
	if x.v.tag != tagJSON {
		return x.v
	}
	b, ok := appendJSONTree(nil, x.v.data)
	if !ok {
		return value{}
	}
	v, _, _ := valueAt(b)
	return v
}
