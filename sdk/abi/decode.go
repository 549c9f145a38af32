package abi

import (
	"encoding"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
)

// decodeInto stores a tree in the Go value p points to, as encoding/json
// would from the same JSON, without going through text: structs (by
// their json tags, names matched as encoding/json matches them), maps with
// string keys, slices, arrays, pointers, interfaces, strings, booleans and
// numbers. It returns ok false, having stored nothing, for what it does
// not handle itself (a type with its own UnmarshalJSON or UnmarshalText,
// for one); the caller then uses encoding/json.
func decodeInto(v value, p any) (ok bool, err error) {
	rv := reflect.ValueOf(p)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || !plain(rv.Type().Elem(), 0) {
		return false, nil
	}
	return true, setValue(v, rv.Elem())
}

var (
	unmarshalerJSON = reflect.TypeFor[json.Unmarshaler]()
	unmarshalerText = reflect.TypeFor[encoding.TextUnmarshaler]()
	rawMessage      = reflect.TypeFor[json.RawMessage]()
	plainTypes      sync.Map // reflect.Type → bool
)

// plain reports whether setValue handles t the way encoding/json would.
func plain(t reflect.Type, depth int) bool {
	if ok, seen := plainTypes.Load(t); seen {
		return ok.(bool)
	}
	ok := depth < 32 && plainUncached(t, depth)
	plainTypes.Store(t, ok)
	return ok
}

func plainUncached(t reflect.Type, depth int) bool {
	if t == rawMessage {
		return true
	}
	if t.Implements(unmarshalerJSON) || reflect.PointerTo(t).Implements(unmarshalerJSON) ||
		t.Implements(unmarshalerText) || reflect.PointerTo(t).Implements(unmarshalerText) {
		return false
	}
	switch t.Kind() {
	case reflect.Bool, reflect.String, reflect.Float32, reflect.Float64,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	case reflect.Interface:
		return t.NumMethod() == 0
	case reflect.Slice:
		// []byte is base64 text to encoding/json.
		return t.Elem().Kind() != reflect.Uint8 && plain(t.Elem(), depth+1)
	case reflect.Pointer, reflect.Array:
		return plain(t.Elem(), depth+1)
	case reflect.Map:
		return t.Key().Kind() == reflect.String && plain(t.Elem(), depth+1)
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Anonymous || !f.IsExported() {
				return false // embedded structs' promotion rules: leave them to encoding/json
			}
			if name, opts, _ := strings.Cut(f.Tag.Get("json"), ","); name == "-" && opts == "" {
				continue
			} else if strings.Contains(opts, "string") {
				return false
			}
			if !plain(f.Type, depth+1) {
				return false
			}
		}
		return true
	}
	return false
}

// fields maps a struct's JSON names to field indexes.
type fields struct {
	exact map[string]int
	names []string // JSON names, for the case-insensitive match
	index []int
}

var structFields sync.Map // reflect.Type → *fields

func fieldsOf(t reflect.Type) *fields {
	if f, ok := structFields.Load(t); ok {
		return f.(*fields)
	}
	fs := &fields{exact: map[string]int{}}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, dup := fs.exact[name]; dup {
			continue
		}
		fs.exact[name] = i
		fs.names, fs.index = append(fs.names, name), append(fs.index, i)
	}
	structFields.Store(t, fs)
	return fs
}

func (fs *fields) find(key string) (int, bool) {
	if i, ok := fs.exact[key]; ok {
		return i, true
	}
	for j, n := range fs.names {
		if strings.EqualFold(n, key) {
			return fs.index[j], true
		}
	}
	return 0, false
}

// setValue stores v in rv, as encoding/json's Unmarshal would.
func setValue(v value, rv reflect.Value) error {
	t := rv.Type()
	if t == rawMessage {
		rv.SetBytes(appendJSON(nil, v))
		return nil
	}
	if v.tag == tagNull {
		switch t.Kind() {
		case reflect.Interface, reflect.Pointer, reflect.Map, reflect.Slice:
			rv.SetZero()
		}
		return nil // null leaves other values as they are
	}
	if v.tag == tagJSON {
		tree, ok := appendJSONTree(nil, v.data)
		if !ok {
			return fmt.Errorf("invalid JSON value")
		}
		v, _, _ = valueAt(tree)
	}
	mismatch := func() error {
		return &json.UnmarshalTypeError{Value: kindOf(v), Type: t}
	}
	switch t.Kind() {
	case reflect.Pointer:
		if rv.IsNil() {
			rv.Set(reflect.New(t.Elem()))
		}
		return setValue(v, rv.Elem())
	case reflect.Interface:
		rv.Set(reflect.ValueOf(v.tree()))
		return nil
	case reflect.Bool:
		if v.tag != tagTrue && v.tag != tagFalse {
			return mismatch()
		}
		rv.SetBool(v.tag == tagTrue)
	case reflect.String:
		if v.tag != tagString {
			return mismatch()
		}
		rv.SetString(string(v.data))
	case reflect.Float32, reflect.Float64:
		if v.tag != tagNumber || rv.OverflowFloat(v.num) {
			return mismatch()
		}
		rv.SetFloat(v.num)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if v.tag != tagNumber || v.num != math.Trunc(v.num) || v.num < -1<<63 || v.num >= 1<<63 || rv.OverflowInt(int64(v.num)) {
			return mismatch()
		}
		rv.SetInt(int64(v.num))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if v.tag != tagNumber || v.num != math.Trunc(v.num) || v.num < 0 || v.num >= 1<<64 || rv.OverflowUint(uint64(v.num)) {
			return mismatch()
		}
		rv.SetUint(uint64(v.num))
	case reflect.Struct:
		if v.tag != tagObject {
			return mismatch()
		}
		fs := fieldsOf(t)
		var err error
		v.entries(func(k []byte, e value) bool {
			if i, ok := fs.find(string(k)); ok {
				err = setValue(e, rv.Field(i))
			}
			return err == nil
		})
		return err
	case reflect.Map:
		if v.tag != tagObject {
			return mismatch()
		}
		if rv.IsNil() {
			rv.Set(reflect.MakeMapWithSize(t, v.count()))
		}
		var err error
		v.entries(func(k []byte, e value) bool {
			x := reflect.New(t.Elem()).Elem()
			if err = setValue(e, x); err == nil {
				rv.SetMapIndex(reflect.ValueOf(string(k)).Convert(t.Key()), x)
			}
			return err == nil
		})
		return err
	case reflect.Slice:
		if v.tag != tagArray {
			return mismatch()
		}
		s := reflect.MakeSlice(t, v.count(), v.count())
		i := 0
		var err error
		v.entries(func(_ []byte, e value) bool {
			err = setValue(e, s.Index(i))
			i++
			return err == nil
		})
		rv.Set(s)
		return err
	case reflect.Array:
		if v.tag != tagArray {
			return mismatch()
		}
		i := 0
		var err error
		v.entries(func(_ []byte, e value) bool {
			if i < rv.Len() {
				err = setValue(e, rv.Index(i))
			}
			i++
			return err == nil
		})
		for ; i < rv.Len(); i++ {
			rv.Index(i).SetZero()
		}
		return err
	}
	return nil
}

func kindOf(v value) string {
	switch v.tag {
	case tagTrue, tagFalse:
		return "bool"
	case tagNumber:
		return "number"
	case tagString:
		return "string"
	case tagObject:
		return "object"
	case tagArray:
		return "array"
	}
	return "value"
}
