package abi

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The wire format of calls and results (sdk/ABI.md, "Passing data"). The
// host and the Go SDK share this code, so the two sides cannot drift apart.
//
// It is binary and flat so that a module decodes a call without scanning
// text: crossing into the sandbox is the planner's hot path, and under the
// deadline checks wazero compiles into every loop of a module, each loop
// iteration a module runs costs about as much as a call into the host.
// Scalars travel decoded (a number is 8 bytes); objects and arrays travel
// as trees of tagged values (tree.go), which a module reads lazily.

// Value tags.
const (
	tagAbsent byte = iota // the path does not exist
	tagNull
	tagFalse
	tagTrue
	tagNumber // float64, 8 bytes little-endian
	tagString // u32 length, UTF-8 bytes
	tagJSON   // u32 length, JSON text of an object or array (older hosts and modules)
	tagObject // u32 body length, u32 count, count × (bytes key, value): tree.go
	tagArray  // u32 body length, u32 count, count × value
)

// Result status bytes.
const (
	statusOK    byte = 0
	statusError byte = 1 // followed by a u32-length message
)

// errShort means a frame ended before its fields did.
var errShort = errors.New("sdk: wire: frame too short")

func appendU32(dst []byte, n int) []byte { return binary.LittleEndian.AppendUint32(dst, uint32(n)) }

func appendBytes(dst []byte, s string) []byte { return append(appendU32(dst, len(s)), s...) }

// appendRawValue appends the tagged form of a JSON value given as text
// (nil or empty: absent).
func appendRawValue(dst []byte, raw json.RawMessage) []byte {
	s := strings.TrimSpace(string(raw))
	switch {
	case s == "":
		return append(dst, tagAbsent)
	case s == "null":
		return append(dst, tagNull)
	case s == "false":
		return append(dst, tagFalse)
	case s == "true":
		return append(dst, tagTrue)
	case s[0] == '"':
		if len(s) >= 2 && s[len(s)-1] == '"' && !strings.ContainsAny(s[1:len(s)-1], `"\\`) {
			return appendBytes(append(dst, tagString), s[1:len(s)-1])
		}
		var str string
		if json.Unmarshal(raw, &str) == nil {
			return appendBytes(append(dst, tagString), str)
		}
	case s[0] == '-' || s[0] >= '0' && s[0] <= '9':
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return binary.LittleEndian.AppendUint64(append(dst, tagNumber), math.Float64bits(f))
		}
	case s[0] == '{' || s[0] == '[':
		if out, ok := appendJSONTree(dst, []byte(s)); ok {
			return out
		}
	}
	return appendBytes(append(dst, tagJSON), s)
}

// appendValue appends the tagged form of a Go value (nil: null); see
// appendTree for the types it takes.
func appendValue(dst []byte, v any) ([]byte, error) {
	switch v := v.(type) { // passed through as it came, e.g. the target as an effect
	case Value:
		return appendWire(dst, v.v), nil
	case value:
		return appendWire(dst, v), nil
	}
	return appendTree(dst, v, 0)
}

// appendWire appends a decoded value as it came (absent: null). It takes
// value, not any: boxing one again would cost the call an allocation.
func appendWire(dst []byte, v value) []byte {
	switch v.tag {
	case tagAbsent:
		return append(dst, tagNull)
	case tagNumber:
		return appendNumber(dst, v.num)
	case tagString, tagJSON, tagObject, tagArray:
		return append(appendU32(append(dst, v.tag), len(v.data)), v.data...)
	}
	return append(dst, v.tag)
}

// AppendState appends the wire form of a state value (nil, bool, float64,
// string, map[string]any, []any), or of an absent one if !present: the
// host's answer to a module's state_read.
func AppendState(dst []byte, v any, present bool) ([]byte, error) {
	if !present {
		return append(dst, tagAbsent), nil
	}
	return appendTree(dst, v, 0)
}

// reader decodes a frame.
type reader struct {
	b   []byte
	err error
}

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) < 1 {
		r.err = errShort
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) u32() int {
	if r.err != nil || len(r.b) < 4 {
		r.err = errShort
		return 0
	}
	n := binary.LittleEndian.Uint32(r.b)
	r.b = r.b[4:]
	return int(n)
}

func (r *reader) bytes() []byte {
	n := r.u32()
	if r.err != nil || n > len(r.b) {
		r.err = errShort
		return nil
	}
	s := r.b[:n:n]
	r.b = r.b[n:]
	return s
}

// value is a decoded tagged value; data is a view into the frame.
type value struct {
	tag  byte
	num  float64
	data []byte // string bytes, or JSON text
}

func (r *reader) value() value {
	v := value{tag: r.byte()}
	switch v.tag {
	case tagAbsent, tagNull, tagFalse, tagTrue:
	case tagNumber:
		if r.err == nil && len(r.b) < 8 {
			r.err = errShort
		}
		if r.err == nil {
			v.num = math.Float64frombits(binary.LittleEndian.Uint64(r.b))
			r.b = r.b[8:]
		}
	case tagString, tagJSON, tagObject, tagArray:
		v.data = r.bytes()
	default:
		if r.err == nil {
			r.err = fmt.Errorf("sdk: wire: unknown value tag %d", v.tag)
		}
	}
	return v
}

// checked reads a value that a module sent, as JSON text, refusing JSON
// payloads that are not JSON. (Values the host sends are not checked again
// in the module: that would cost every call a scan.)
func (r *reader) checked() json.RawMessage {
	v := r.value()
	if r.err == nil && v.tag == tagJSON && !json.Valid(v.data) {
		r.err = fmt.Errorf("sdk: wire: a JSON value is not JSON: %.40q", v.data)
	}
	if r.err == nil && v.tag == tagString && !utf8.Valid(v.data) {
		r.err = errors.New("sdk: wire: a string is not UTF-8")
	}
	if r.err == nil && v.tag == tagNumber && (math.IsNaN(v.num) || math.IsInf(v.num, 0)) {
		r.err = fmt.Errorf("sdk: wire: the number %v has no JSON form", v.num)
	}
	if r.err == nil && (v.tag == tagObject || v.tag == tagArray) {
		r.err = checkTree(v, 0)
	}
	return v.json()
}

// json returns the value as JSON text (nil when absent).
func (v value) json() json.RawMessage {
	switch v.tag {
	case tagNull:
		return json.RawMessage("null")
	case tagFalse:
		return json.RawMessage("false")
	case tagTrue:
		return json.RawMessage("true")
	case tagNumber:
		return strconv.AppendFloat(nil, v.num, 'g', -1, 64)
	case tagString:
		b, _ := json.Marshal(string(v.data))
		return b
	case tagJSON:
		return append(json.RawMessage(nil), v.data...)
	case tagObject, tagArray:
		return appendJSON(nil, v)
	}
	return nil
}

// decode stores the value in p: directly for the common scalar types and
// for plain structs, maps and slices (decode.go), through encoding/json
// for the rest.
func (v value) decode(p any) error {
	switch p := p.(type) {
	case *float64:
		if v.tag == tagNumber {
			*p = v.num
			return nil
		}
	case *int:
		if v.tag == tagNumber && v.num == math.Trunc(v.num) && math.Abs(v.num) < 1<<53 {
			*p = int(v.num)
			return nil
		}
	case *bool:
		if v.tag == tagTrue || v.tag == tagFalse {
			*p = v.tag == tagTrue
			return nil
		}
	case *string:
		if v.tag == tagString {
			*p = string(v.data)
			return nil
		}
	case *any:
		if v.tag != tagJSON {
			*p = v.tree()
			return nil
		}
	case *map[string]any:
		if v.tag == tagObject {
			*p = v.tree().(map[string]any)
			return nil
		}
	case *[]any:
		if v.tag == tagArray {
			*p = v.tree().([]any)
			return nil
		}
	}
	if ok, err := decodeInto(v, p); ok {
		return err
	}
	return json.Unmarshal(v.json(), p)
}

// EncodeCall is the host's side of a call frame: the job's (or sensor's)
// index in the manifest, the path, the parameters, and the current and
// target values as JSON text (empty: absent).
func EncodeCall(dst []byte, index int, c Call) []byte {
	if dst == nil { // room for the usual call at once: trees are about as long as their JSON
		dst = make([]byte, 0, 64+len(c.Path)+len(c.Current)+len(c.Target)+32*len(c.Params))
	}
	dst = appendU32(dst, index)
	dst = appendBytes(dst, c.Path)
	dst = appendU32(dst, len(c.Params))
	for _, k := range sortedKeys(c.Params) {
		dst = appendBytes(appendBytes(dst, k), c.Params[k])
	}
	dst = appendRawValue(dst, c.Current)
	return appendRawValue(dst, c.Target)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

// Frame is the module's side of a call frame, decoded: views into the
// input buffer, valid while the buffer is.
type Frame struct {
	// Index is the job's (or sensor's) position in the manifest.
	Index int
	// Path is the concrete path.
	Path []byte
	// Params are the pattern's parameters, name and value, in the order
	// they came (EncodeCall sorts them by name).
	Params [][2][]byte
	// Current and Target are the state's and the target's values at Path.
	Current, Target Value

	pbuf [4][2][]byte // Params' storage for the usual few, to spare an allocation
}

// DecodeCall is the module's side of a call frame (EncodeCall's output):
// it decodes b into f, which then views b. A frame that does not decode
// is an error, never a panic.
func DecodeCall(b []byte, f *Frame) error {
	r := reader{b: b}
	f.Index, f.Path = r.u32(), r.bytes()
	n := r.u32()
	if r.err == nil && n > len(r.b)/8 {
		r.err = errShort
	}
	f.Params = f.pbuf[:0]
	for i := 0; i < n && r.err == nil; i++ {
		f.Params = append(f.Params, [2][]byte{r.bytes(), r.bytes()})
	}
	f.Current, f.Target = Value{r.value()}, Value{r.value()}
	return r.err
}

// AppendError appends an error result: the module reporting a failure of
// any export.
func AppendError(dst []byte, err error) []byte {
	return appendBytes(append(dst, statusError), err.Error())
}

// EncodeValue is the module's side of a tern_run, tern_sense or
// tern_configure result (DecodeValue reads it): status ok, then v. v is
// nil (null), a bool, float64, int, string, map[string]any, []any, Value
// or json.RawMessage, written directly, or any other value encoding/json
// encodes.
func EncodeValue(dst []byte, v any) ([]byte, error) {
	return appendValue(append(dst, statusOK), v)
}

// DecodeState is the module's side of a state_read answer (AppendState's
// output): the value, viewing b.
func DecodeState(b []byte) (Value, error) {
	v, _, ok := valueAt(b)
	if !ok {
		return Value{}, errShort
	}
	return Value{v}, nil
}

// readStatus reads a result's status and returns the module's error, if it
// reported one.
func (r *reader) status() error {
	switch s := r.byte(); {
	case r.err != nil:
		return nil
	case s == statusError:
		msg := r.bytes()
		if r.err == nil {
			return errors.New(string(msg))
		}
	case s != statusOK:
		r.err = fmt.Errorf("sdk: wire: unknown result status %d", s)
	}
	return nil
}

// DecodeTry is the host's side of a tern_try result. A module's own error
// is returned as modErr; a malformed frame as err.
func DecodeTry(b []byte) (t Try, modErr, err error) {
	r := &reader{b: b}
	if modErr = r.status(); modErr != nil || r.err != nil {
		return Try{}, modErr, r.err
	}
	t.OK = r.byte() == 1
	t.PathFree = r.byte()&flagPathFree != 0
	if !t.OK {
		return t, nil, r.err
	}
	switch kind := r.byte(); kind {
	case 0: // an action's effect
		t.Effect = r.checked()
	case 1: // a method's steps
		n := r.u32()
		if r.err == nil && n > len(r.b)/9 {
			r.err = errShort
		}
		for i := 0; i < n && r.err == nil; i++ {
			s := TaskRef{Job: string(r.bytes()), Path: string(r.bytes())}
			s.Target = r.checked()
			t.Tasks = append(t.Tasks, s)
		}
	default:
		if r.err == nil {
			r.err = fmt.Errorf("sdk: wire: unknown try kind %d", kind)
		}
	}
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("sdk: wire: %d bytes after the result", len(r.b))
	}
	return t, nil, r.err
}

// DecodeValue is the host's side of a tern_run or tern_sense result: the
// value as JSON text (nil if none).
func DecodeValue(b []byte) (v json.RawMessage, modErr, err error) {
	r := &reader{b: b}
	if modErr = r.status(); modErr != nil || r.err != nil {
		return nil, modErr, r.err
	}
	v = r.checked()
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("sdk: wire: %d bytes after the result", len(r.b))
	}
	return v, nil, r.err
}

// Try flags.
const (
	// flagPathFree: the answer did not depend on the path or its
	// parameters, so it holds for every path the job binds.
	flagPathFree byte = 1
)

// EncodeTry is the module's side of a tern_try result (DecodeTry reads
// it).
func EncodeTry(dst []byte, t TryOut) ([]byte, error) {
	var flags byte
	if t.PathFree {
		flags |= flagPathFree
	}
	dst = append(dst, statusOK)
	if !t.OK {
		return append(dst, 0, flags), nil
	}
	dst = append(dst, 1, flags)
	if !t.Method {
		return appendValue(append(dst, 0), t.Effect)
	}
	dst = appendU32(append(dst, 1), len(t.Steps))
	for _, s := range t.Steps {
		dst = appendBytes(appendBytes(dst, s.Job), s.Path)
		dst = appendRawValue(dst, s.Target)
	}
	return dst, nil
}

// TryOut is a job's answer to tern_try as the module gives it, before
// encoding; Try is the same answer as the host decodes it. The effect is
// a Go value here, JSON text there.
type TryOut struct {
	OK       bool
	PathFree bool      // as Try.PathFree
	Method   bool      // the answer is Steps, not Effect
	Effect   any       // an action's effect, a value as EncodeValue takes (nil deletes the path)
	Steps    []TaskRef // a method's expansion
}
