package abi

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Objects and arrays on the wire (ABI.md, "Passing data"): tag 7 (object)
// or 8 (array), a u32 body length, then the body: a u32 count and, for an
// object, count pairs of `bytes key` and a value, for an array count
// values. The body length lets a reader step over a value it does not want
// in one move, so a module that reads one field of a large object costs
// what it reads, not the object's size; and nothing is parsed as text.

// maxTreeDepth bounds how deeply objects and arrays nest in a value a
// module sends the host (the host's own values nest at most 64 deep).
const maxTreeDepth = 128

var errTooDeep = fmt.Errorf("sdk: wire: values nest deeper than %d", maxTreeDepth)

// size returns how many bytes the tagged value at the start of b takes, or
// -1 if b is too short for it.
func size(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	n := 1
	switch b[0] {
	case tagAbsent, tagNull, tagFalse, tagTrue:
	case tagNumber:
		n += 8
	case tagString, tagJSON, tagObject, tagArray:
		if len(b) < 5 {
			return -1
		}
		n += 4 + int(binary.LittleEndian.Uint32(b[1:]))
	default:
		return -1
	}
	if n > len(b) {
		return -1
	}
	return n
}

// valueAt decodes the tagged value at the start of b (a view into b) and
// returns what follows it; ok is false if b is malformed there.
func valueAt(b []byte) (value, []byte, bool) {
	n := size(b)
	if n < 0 {
		return value{}, nil, false
	}
	v := value{tag: b[0]}
	switch v.tag {
	case tagNumber:
		v.num = math.Float64frombits(binary.LittleEndian.Uint64(b[1:]))
	case tagString, tagJSON, tagObject, tagArray:
		v.data = b[5:n:n]
	}
	return v, b[n:], true
}

// count is a container's number of entries (0 if it is not one, or is
// malformed).
func (v value) count() int {
	if (v.tag != tagObject && v.tag != tagArray) || len(v.data) < 4 {
		return 0
	}
	return int(binary.LittleEndian.Uint32(v.data))
}

// entries calls fn with each of a container's entries in order (key is nil
// for an array's) until fn returns false; it stops at the first malformed
// byte.
func (v value) entries(fn func(key []byte, e value) bool) {
	if (v.tag != tagObject && v.tag != tagArray) || len(v.data) < 4 {
		return
	}
	b := v.data[4:]
	for range v.count() {
		var key []byte
		if v.tag == tagObject {
			if len(b) < 4 {
				return
			}
			k := int(binary.LittleEndian.Uint32(b))
			if k > len(b)-4 {
				return
			}
			key, b = b[4:4+k], b[4+k:]
		}
		e, rest, ok := valueAt(b)
		if !ok || !fn(key, e) {
			return
		}
		b = rest
	}
}

// appendContainer appends the tag and a placeholder body length, and
// returns where the body starts; endContainer fills the length in.
func appendContainer(dst []byte, tag byte, count int) ([]byte, int) {
	dst = append(dst, tag, 0, 0, 0, 0)
	start := len(dst)
	return appendU32(dst, count), start
}

func endContainer(dst []byte, start int) []byte {
	binary.LittleEndian.PutUint32(dst[start-4:], uint32(len(dst)-start))
	return dst
}

// appendTree appends the tagged form of a JSON-like Go value: nil, bool,
// float64, int, string, map[string]any (keys sorted), []any, and the
// values a module reads (Value, json.RawMessage). Other types go through
// encoding/json.
func appendTree(dst []byte, v any, depth int) ([]byte, error) {
	if depth > maxTreeDepth {
		return dst, errTooDeep
	}
	switch v := v.(type) {
	case nil:
		return append(dst, tagNull), nil
	case bool:
		if v {
			return append(dst, tagTrue), nil
		}
		return append(dst, tagFalse), nil
	case string:
		return appendBytes(append(dst, tagString), v), nil
	case float64:
		return appendNumber(dst, v), nil
	case int:
		return appendNumber(dst, float64(v)), nil
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst, start := appendContainer(dst, tagObject, len(keys))
		var err error
		for _, k := range keys {
			if dst, err = appendTree(appendBytes(dst, k), v[k], depth+1); err != nil {
				return dst, err
			}
		}
		return endContainer(dst, start), nil
	case []any:
		dst, start := appendContainer(dst, tagArray, len(v))
		var err error
		for _, x := range v {
			if dst, err = appendTree(dst, x, depth+1); err != nil {
				return dst, err
			}
		}
		return endContainer(dst, start), nil
	case Value:
		return appendWire(dst, v.v), nil
	case value:
		return appendWire(dst, v), nil
	case json.RawMessage:
		return appendRawValue(dst, v), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return dst, err
	}
	return appendRawValue(dst, b), nil
}

func appendNumber(dst []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(append(dst, tagNumber), math.Float64bits(f))
}

// appendJSONTree appends the tagged form of JSON text (objects and arrays
// as trees), or returns ok false if b is not one JSON value.
func appendJSONTree(dst []byte, b []byte) (_ []byte, ok bool) {
	p := jsonParser{b: b}
	p.space()
	dst, ok = p.value(dst, 0)
	p.space()
	return dst, ok && p.i == len(p.b)
}

// jsonParser transcodes JSON text into the wire form without building Go
// values: the host encodes every call's current and target values with it.
type jsonParser struct {
	b []byte
	i int
}

func (p *jsonParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) lit(s string) bool {
	if len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		return false
	}
	p.i += len(s)
	return true
}

func (p *jsonParser) value(dst []byte, depth int) ([]byte, bool) {
	if p.i >= len(p.b) || depth > maxTreeDepth {
		return dst, false
	}
	switch c := p.b[p.i]; {
	case c == 'n':
		return append(dst, tagNull), p.lit("null")
	case c == 't':
		return append(dst, tagTrue), p.lit("true")
	case c == 'f':
		return append(dst, tagFalse), p.lit("false")
	case c == '"':
		s, ok := p.str()
		return appendBytes(append(dst, tagString), s), ok
	case c == '-' || c >= '0' && c <= '9':
		j := p.i
		for j < len(p.b) && (p.b[j] >= '0' && p.b[j] <= '9' || p.b[j] == '-' || p.b[j] == '+' || p.b[j] == '.' || p.b[j] == 'e' || p.b[j] == 'E') {
			j++
		}
		f, err := strconv.ParseFloat(string(p.b[p.i:j]), 64)
		if err != nil || !json.Valid(p.b[p.i:j]) {
			return dst, false
		}
		p.i = j
		return appendNumber(dst, f), true
	case c == '{' || c == '[':
		return p.container(dst, c, depth)
	}
	return dst, false
}

// container reads an object or an array (open is '{' or '['): its
// entries, each a value after its key in an object, then the count.
func (p *jsonParser) container(dst []byte, open byte, depth int) ([]byte, bool) {
	tag, end := tagArray, byte(']')
	if open == '{' {
		tag, end = tagObject, '}'
	}
	p.i++
	dst, start := appendContainer(dst, tag, 0)
	p.space()
	if p.i < len(p.b) && p.b[p.i] == end {
		p.i++
		return endContainer(dst, start), true
	}
	for n := 1; ; n++ {
		p.space()
		if tag == tagObject {
			if p.i >= len(p.b) || p.b[p.i] != '"' {
				return dst, false
			}
			k, ok := p.str()
			if !ok {
				return dst, false
			}
			p.space()
			if p.i >= len(p.b) || p.b[p.i] != ':' {
				return dst, false
			}
			p.i++
			p.space()
			dst = appendBytes(dst, k)
		}
		var ok bool
		if dst, ok = p.value(dst, depth+1); !ok {
			return dst, false
		}
		p.space()
		if p.i < len(p.b) && p.b[p.i] == ',' {
			p.i++
			continue
		}
		if p.i < len(p.b) && p.b[p.i] == end {
			p.i++
			binary.LittleEndian.PutUint32(dst[start:], uint32(n))
			return endContainer(dst, start), true
		}
		return dst, false
	}
}

// str reads a JSON string; escapes go through encoding/json.
func (p *jsonParser) str() (string, bool) {
	j := p.i + 1
	escaped := false
	for j < len(p.b) {
		c := p.b[j]
		if c == '"' {
			break
		}
		if c == '\\' {
			escaped = true
			j++
		} else if c < 0x20 {
			return "", false
		}
		j++
	}
	if j >= len(p.b) {
		return "", false
	}
	raw := p.b[p.i : j+1]
	p.i = j + 1
	if !escaped {
		if !utf8.Valid(raw) {
			return "", false
		}
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// checkTree checks a container a module sent: counts and lengths that
// add up, keys and strings in UTF-8, numbers with a JSON form, nesting
// within maxTreeDepth.
func checkTree(v value, depth int) error {
	if depth > maxTreeDepth {
		return errTooDeep
	}
	switch v.tag {
	case tagString:
		if !utf8.Valid(v.data) {
			return errors.New("sdk: wire: a string is not UTF-8")
		}
	case tagNumber:
		if math.IsNaN(v.num) || math.IsInf(v.num, 0) {
			return fmt.Errorf("sdk: wire: the number %v has no JSON form", v.num)
		}
	case tagJSON:
		if !json.Valid(v.data) {
			return fmt.Errorf("sdk: wire: a JSON value is not JSON: %.40q", v.data)
		}
	case tagAbsent:
		if depth > 0 {
			return errors.New("sdk: wire: an absent value inside an object or array")
		}
	case tagObject, tagArray:
		if len(v.data) < 4 {
			return errShort
		}
		n := v.count()
		// Each entry takes at least one byte (five in an object).
		per := 1
		if v.tag == tagObject {
			per = 5
		}
		if n > (len(v.data)-4)/per {
			return errShort
		}
		b := v.data[4:]
		for range n {
			if v.tag == tagObject {
				if len(b) < 4 {
					return errShort
				}
				k := int(binary.LittleEndian.Uint32(b))
				if k > len(b)-4 {
					return errShort
				}
				if !utf8.Valid(b[4 : 4+k]) {
					return errors.New("sdk: wire: an object key is not UTF-8")
				}
				b = b[4+k:]
			}
			e, rest, ok := valueAt(b)
			if !ok {
				if len(b) > 0 && b[0] > tagArray {
					return fmt.Errorf("sdk: wire: unknown value tag %d", b[0])
				}
				return errShort
			}
			if err := checkTree(e, depth+1); err != nil {
				return err
			}
			b = rest
		}
		if len(b) > 0 {
			return fmt.Errorf("sdk: wire: %d bytes after an object's or array's entries", len(b))
		}
	}
	return nil
}

// appendJSON appends v as JSON text.
func appendJSON(dst []byte, v value) []byte {
	switch v.tag {
	case tagNull, tagAbsent:
		return append(dst, "null"...)
	case tagFalse:
		return append(dst, "false"...)
	case tagTrue:
		return append(dst, "true"...)
	case tagNumber:
		return strconv.AppendFloat(dst, v.num, 'g', -1, 64)
	case tagString:
		return appendJSONString(dst, v.data)
	case tagJSON:
		return append(dst, v.data...)
	case tagObject:
		dst = append(dst, '{')
		first := true
		v.entries(func(k []byte, e value) bool {
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = append(appendJSONString(dst, k), ':')
			dst = appendJSON(dst, e)
			return true
		})
		return append(dst, '}')
	case tagArray:
		dst = append(dst, '[')
		first := true
		v.entries(func(_ []byte, e value) bool {
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = appendJSON(dst, e)
			return true
		})
		return append(dst, ']')
	}
	return append(dst, "null"...)
}

const hexDigits = "0123456789abcdef"

func appendJSONString(dst []byte, s []byte) []byte {
	dst = append(dst, '"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// tree builds the Go value of v: map[string]any, []any, float64, string,
// bool or nil.
func (v value) tree() any {
	switch v.tag {
	case tagTrue:
		return true
	case tagFalse:
		return false
	case tagNumber:
		return v.num
	case tagString:
		return string(v.data)
	case tagObject:
		m := make(map[string]any, v.count())
		v.entries(func(k []byte, e value) bool { m[string(k)] = e.tree(); return true })
		return m
	case tagArray:
		a := make([]any, 0, v.count())
		v.entries(func(_ []byte, e value) bool { a = append(a, e.tree()); return true })
		return a
	case tagJSON:
		var x any
		if json.Unmarshal(v.data, &x) == nil {
			return x
		}
	}
	return nil
}
