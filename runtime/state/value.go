package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// Parse decodes exactly one JSON document into a state value. Whitespace may
// surround it; anything else after it is an error. Numbers become float64.
//
// Outside input is held to limits that suit a small board: objects and
// arrays nest at most MaxDepth deep (ErrTooDeep) and the text must be UTF-8
// (ErrSyntax). The caller bounds the size. Errors wrap ErrSyntax or
// ErrTooDeep and give the byte offset where the problem was found.
// Duplicate object keys are accepted; the last one wins, as in
// encoding/json.
func Parse(b []byte) (any, error) {
	if v, ok := parseScalar(b); ok {
		return v, nil
	}
	if err := checkText(b); err != nil {
		return nil, err
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return nil, fmt.Errorf("%w: at offset %d: %w", ErrSyntax, syn.Offset, err)
		case errors.As(err, &typ): // a number out of float64's range
			return nil, fmt.Errorf("%w: at offset %d: %w", ErrSyntax, min(typ.Offset, int64(len(b))), err)
		default:
			return nil, fmt.Errorf("%w: %w", ErrSyntax, err)
		}
	}
	return v, nil
}

// parseScalar decodes the common small documents, a literal, a number or a
// string without escapes, without encoding/json (a module's effect is
// parsed on every planning call); ok is false for anything else, which
// Parse then decodes (or refuses) in full.
func parseScalar(b []byte) (any, bool) {
	switch string(b) {
	case "true":
		return true, true
	case "false":
		return false, true
	case "null":
		return nil, true
	}
	if len(b) == 0 || len(b) > 64 && b[0] != '"' {
		return nil, false
	}
	switch c := b[0]; {
	case c == '-' || c >= '0' && c <= '9':
		if !json.Valid(b) {
			return nil, false
		}
		f, err := strconv.ParseFloat(string(b), 64)
		return f, err == nil
	case c == '"':
		if len(b) < 2 || b[len(b)-1] != '"' {
			return nil, false
		}
		for _, c := range b[1 : len(b)-1] {
			if c == '"' || c == '\\' || c < 0x20 {
				return nil, false
			}
		}
		if !utf8.Valid(b) {
			return nil, false
		}
		return string(b[1 : len(b)-1]), true
	}
	return nil, false
}

// checkText rejects invalid UTF-8 (which encoding/json would silently
// replace) and nesting deeper than MaxDepth (before encoding/json recurses
// into it). It does not validate the grammar; json.Unmarshal does.
func checkText(b []byte) error {
	if !utf8.Valid(b) {
		for i := 0; i < len(b); {
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				return fmt.Errorf("%w: at offset %d: invalid UTF-8", ErrSyntax, i)
			}
			i += n
		}
	}
	depth := 0
	inString, escaped := false, false
	for i, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			if depth > MaxDepth {
				return fmt.Errorf("%w: at offset %d", ErrTooDeep, i)
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return nil
}

// Clone returns a deep copy of v: no map or slice of the copy is shared
// with v.
func Clone(v any) any {
	switch v := v.(type) {
	case map[string]any:
		if v == nil {
			return v
		}
		m := make(map[string]any, len(v))
		for k, x := range v {
			m[k] = Clone(x)
		}
		return m
	case []any:
		if v == nil {
			return v
		}
		s := make([]any, len(v))
		for i, x := range v {
			s[i] = Clone(x)
		}
		return s
	default:
		return v
	}
}

// Equal reports whether a and b are the same JSON value. Objects are equal
// when they have the same keys with equal values, in any order; arrays when
// they have equal elements in the same order. Numbers compare by value
// whatever their Go type, and 0 equals -0.
func Equal(a, b any) bool {
	switch a := a.(type) {
	case nil:
		return b == nil
	case string:
		bs, ok := b.(string)
		return ok && a == bs
	case bool:
		bb, ok := b.(bool)
		return ok && a == bb
	case float64:
		if bf, ok := b.(float64); ok {
			return a == bf
		}
		bf, ok := number(b)
		return ok && a == bf
	case map[string]any:
		bm, ok := b.(map[string]any)
		if !ok || len(a) != len(bm) {
			return false
		}
		for k, av := range a {
			bv, ok := bm[k]
			if !ok || !Equal(av, bv) {
				return false
			}
		}
		return true
	case []any:
		bs, ok := b.([]any)
		if !ok || len(a) != len(bs) {
			return false
		}
		for i := range a {
			if !Equal(a[i], bs[i]) {
				return false
			}
		}
		return true
	default:
		af, ok := number(a)
		if !ok {
			return false
		}
		bf, ok := number(b)
		return ok && af == bf
	}
}

// number converts the Go number types a job might write into the model's
// float64.
func number(v any) (float64, bool) {
	switch v := v.(type) {
	case float64:
		return v, true
	case float32:
		return float64(v), true
	case int:
		return float64(v), true
	case int8:
		return float64(v), true
	case int16:
		return float64(v), true
	case int32:
		return float64(v), true
	case int64:
		return float64(v), true
	case uint:
		return float64(v), true
	case uint8:
		return float64(v), true
	case uint16:
		return float64(v), true
	case uint32:
		return float64(v), true
	case uint64:
		return float64(v), true
	case uintptr:
		return float64(v), true
	case json.Number:
		f, err := v.Float64()
		return f, err == nil
	}
	return 0, false
}

// Hash returns a 64-bit hash of v that depends only on its JSON value:
// object keys are hashed in sorted order, numbers as float64 (0 and -0
// alike), so Equal values hash alike. It is the same in every process and
// on every platform, which lets the planner compare states across runs;
// it may change between tern releases, so do not store it long-term.
// Values outside the model hash as null.
func Hash(v any) uint64 {
	return Mix(hashValue(hashSeed, v))
}

const (
	hashSeed  = 0x9e3779b97f4a7c15
	hashMulti = 0xbf58476d1ce4e5b9
)

// Type tags keep values of different types apart ("1" vs 1, [] vs {}).
const (
	tagNull uint64 = iota + 1
	tagFalse
	tagTrue
	tagNumber
	tagString
	tagArray
	tagObject
)

func mix(h, x uint64) uint64 {
	h ^= x
	h *= hashMulti
	return h ^ h>>31
}

// Mix scrambles a 64-bit value (the splitmix64 finaliser): Hash ends with
// it, and hashes built from Hash values (the planner's state hash) use it
// to combine them.
func Mix(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	return h ^ h>>31
}

func hashString(h uint64, s string) uint64 {
	h = mix(h, uint64(len(s)))
	for len(s) >= 8 {
		h = mix(h, binary.LittleEndian.Uint64([]byte(s[:8])))
		s = s[8:]
	}
	if len(s) > 0 {
		var tail [8]byte
		copy(tail[:], s)
		h = mix(h, binary.LittleEndian.Uint64(tail[:]))
	}
	return h
}

func hashValue(h uint64, v any) uint64 {
	switch v := v.(type) {
	case nil:
		return mix(h, tagNull)
	case bool:
		if v {
			return mix(h, tagTrue)
		}
		return mix(h, tagFalse)
	case string:
		return hashString(mix(h, tagString), v)
	case map[string]any:
		h = mix(mix(h, tagObject), uint64(len(v)))
		var buf [16]string
		for _, k := range appendSortedKeys(buf[:0], v) {
			h = hashValue(hashString(h, k), v[k])
		}
		return h
	case []any:
		h = mix(mix(h, tagArray), uint64(len(v)))
		for _, x := range v {
			h = hashValue(h, x)
		}
		return h
	default:
		f, ok := number(v)
		if !ok {
			return mix(h, tagNull)
		}
		if f == 0 {
			f = 0 // -0 hashes as 0, as Equal says they are equal
		}
		return mix(mix(h, tagNumber), math.Float64bits(f))
	}
}

// Canonical returns v as canonical JSON: object keys sorted, no
// insignificant spaces. That is exactly what encoding/json.Marshal produces
// for these types (it sorts map keys, and escapes <, > and & as \u003c,
// \u003e, \u0026), so Canonical is Marshal with the error dropped: it
// returns nil for a value JSON cannot hold (NaN, ±Inf, types outside the
// model that Marshal rejects).
func Canonical(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}
