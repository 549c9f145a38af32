package fleet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tern-iot/tern/runtime"
)

// Format is the payload format this build reads and writes. Every payload
// carries it in its "format" field. Fields may be added within a format
// (readers ignore fields they do not know); a change that an older reader
// would misread gets a new format number, and readers refuse formats they do
// not know instead of guessing.
const Format = 1

// MaxPayload is the largest payload accepted, in bytes (256 KiB). Targets
// and reports are stored and parsed on small boards; anything bigger is a
// mistake, or an attack.
const MaxPayload = 256 << 10

// TargetEnvelope carries a target to a device. It is published retained,
// QoS 1, on the device's target topic ([Topics.DeviceTarget]).
//
//	{"format":1,"version":7,"target":{"relays":{"fan":{"on":true}}},"issued":"2025-11-24T13:00:00Z"}
type TargetEnvelope struct {
	// Format is always Format (1).
	Format int `json:"format"`
	// Version orders the targets of one device: it starts at 1 and grows
	// with every push. The device applies each version once and refuses
	// versions older than the one it holds, which makes redelivery (retained
	// messages, QoS 1 duplicates) harmless.
	Version uint64 `json:"version"`
	// Target is the desired state, a JSON object. It is partial: it names
	// only what the operator cares about; null deletes a key (JSON Merge
	// Patch, RFC 7386).
	Target json.RawMessage `json:"target"`
	// Issued is when the operator issued the target (RFC 3339), optional.
	// It is for people reading logs: versions order targets, clocks do not.
	Issued time.Time `json:"issued,omitzero"`
	// Key and Sig sign the envelope (see Sign): the operator key's id and
	// the ed25519 signature, base64. A device with trusted keys refuses
	// envelopes without them.
	Key string `json:"key,omitempty"`
	Sig []byte `json:"sig,omitempty"`
}

// StateReport is a device's report of itself: the fields of [runtime.Status]
// plus format and device id, in one flat JSON object. It is published
// retained, QoS 1, on the device's state topic ([Topics.State]), so the last
// report of every device is always there for an operator to read.
//
//	{"format":1,"device":"pi-001","time":"2025-11-24T13:00:05Z","target_version":7,
//	 "converged":true,"phase":"idle","state":{"relays":{"fan":{"on":true}}},"modules":{"relay":"1.2.0"}}
type StateReport struct {
	// Format is always Format (1).
	Format int `json:"format"`
	// Device is the reporting device's id; it matches the topic.
	Device string `json:"device"`
	// Groups are the groups the device belongs to ([DeviceOptions.Groups]),
	// so that an operator can list a group's devices from the retained
	// reports alone; absent when none. Devices that predate the field
	// leave it out, and then belong to no group as far as tern status
	// and tern watch --group can tell.
	Groups []string `json:"groups,omitempty"`
	// Status is flattened into the object: time, target_version, converged,
	// phase, state, error, modules. See runtime.Status for each.
	runtime.Status
}

// EventReport is one step of a device's work: the fields of [runtime.Event]
// plus format and device id, in one flat JSON object. It is published QoS 1,
// not retained, on the device's events topic ([Topics.Events]).
//
//	{"format":1,"device":"pi-001","id":"01JD…","time":"2025-11-24T13:00:04Z",
//	 "kind":"task.done","target_version":7,"module":"relay","job":"switch","path":"/relays/fan"}
type EventReport struct {
	// Format is always Format (1).
	Format int `json:"format"`
	// Device is the reporting device's id; it matches the topic.
	Device string `json:"device"`
	// Seq numbers the device's events from 1, in the order they happened,
	// across restarts (the device's outbox keeps it). Delivery is at least
	// once, so a consumer keeps the highest Seq seen per device and drops
	// reports at or below it: that makes delivery exactly once and in
	// order from the consumer's point of view. 0 means unnumbered.
	Seq uint64 `json:"seq,omitempty"`
	// Epoch names the numbering Seq belongs to: random, made when the
	// device's store was new. A device whose store is wiped (re-flashed,
	// reinstalled) numbers from 1 again under a new epoch, so consumers
	// keep the highest Seq per device and epoch. Empty from devices that
	// predate the field.
	Epoch string `json:"epoch,omitempty"`
	// Event is flattened into the object: id, time, kind, target_version,
	// module, job, path, message. See runtime.Event for each.
	runtime.Event
}

// ParseTargetEnvelope reads a target envelope received from the fleet. It
// refuses, with a message meant for the operator who pushed it: payloads over
// MaxPayload ([ErrTooLarge]), formats other than Format
// ([ErrUnsupportedFormat]), and ([ErrMalformed]) anything that is not a JSON
// object, version 0, and a target that is not a JSON object.
func ParseTargetEnvelope(b []byte) (TargetEnvelope, error) {
	const what = "target envelope"
	var env TargetEnvelope
	if err := decode(what, "ternd on the device", b, &env); err != nil {
		return TargetEnvelope{}, err
	}
	if env.Version == 0 {
		return TargetEnvelope{}, newError(ErrMalformed, nil,
			`fleet: %s has version 0 or no "version"; versions start at 1 and grow with every push`, what)
	}
	if k := jsonKind(env.Target); k != "an object" {
		return TargetEnvelope{}, newError(ErrMalformed, nil,
			`fleet: %s: "target" must be a JSON object (the desired state), got %s`, what, k)
	}
	return env, nil
}

// ParseStateReport reads a state report received from a device. It refuses
// payloads over MaxPayload, other formats, and reports without a valid
// device id or with an invalid group name.
func ParseStateReport(b []byte) (StateReport, error) {
	const what = "state report"
	var r StateReport
	if err := decode(what, "tern", b, &r); err != nil {
		return StateReport{}, err
	}
	if p := idProblem(r.Device); p != "" {
		return StateReport{}, newError(ErrMalformed, nil, `fleet: %s: bad "device": %s`, what, p)
	}
	for _, g := range r.Groups {
		if p := idProblem(g); p != "" {
			return StateReport{}, newError(ErrMalformed, nil, `fleet: %s of device %s: bad group in "groups": %s`, what, r.Device, p)
		}
	}
	return r, nil
}

// ParseOnline reads the payload of a device's online topic
// ([Topics.Online]): the bare words true or false, as the device and its
// last will publish them. Surrounding white space is tolerated (a person
// typing into mosquitto_pub); anything else is refused with [ErrMalformed].
func ParseOnline(b []byte) (bool, error) {
	switch string(bytes.TrimSpace(b)) {
	case onlineTrue:
		return true, nil
	case onlineFalse:
		return false, nil
	}
	return false, newError(ErrMalformed, nil, "fleet: online flag must be the bare word true or false, got %.20q", b)
}

// maxEpoch bounds EventReport.Epoch: consumers keep one counter per device
// and epoch.
const maxEpoch = 64

// ParseEventReport reads an event report received from a device. It refuses
// payloads over MaxPayload, other formats, reports without a valid device id
// and events without a kind.
func ParseEventReport(b []byte) (EventReport, error) {
	const what = "event report"
	var r EventReport
	if err := decode(what, "tern", b, &r); err != nil {
		return EventReport{}, err
	}
	if p := idProblem(r.Device); p != "" {
		return EventReport{}, newError(ErrMalformed, nil, `fleet: %s: bad "device": %s`, what, p)
	}
	if r.Kind == "" {
		return EventReport{}, newError(ErrMalformed, nil, `fleet: %s has no "kind"; every event says what happened, e.g. "task.done"`, what)
	}
	if len(r.Epoch) > maxEpoch {
		return EventReport{}, newError(ErrMalformed, nil, `fleet: %s: "epoch" is %d bytes; it is a short id, at most %d`, what, len(r.Epoch), maxEpoch)
	}
	return r, nil
}

// decode checks size and format, then unmarshals b into v. what names the
// payload in messages; reader names the program to upgrade when the format
// is newer than this build.
func decode(what, reader string, b []byte, v any) error {
	return decodeLimit(what, reader, MaxPayload, "keep it smaller", b, v)
}

// decodeLimit is decode with a size limit other than MaxPayload; fix says
// what to do about a payload over it.
func decodeLimit(what, reader string, limit int, fix string, b []byte, v any) error {
	if len(b) > limit {
		return newError(ErrTooLarge, nil, "fleet: %s is %d bytes, over the %d-byte limit; %s", what, len(b), limit, fix)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return newError(ErrMalformed, nil, `fleet: %s is empty; expected a JSON object with "format": %d`, what, Format)
	}
	var head struct {
		Format json.RawMessage `json:"format"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		if k := jsonKind(b); k != "an object" && k != "invalid JSON" {
			return newError(ErrMalformed, nil, "fleet: %s must be a JSON object, got %s", what, k)
		}
		return newError(ErrMalformed, err, "fleet: %s is not valid JSON: %v", what, err)
	}
	switch f := string(head.Format); f {
	case strconv.Itoa(Format):
	case "", "null":
		return newError(ErrMalformed, nil, `fleet: %s has no "format"; add "format": %d`, what, Format)
	default:
		if _, err := strconv.ParseUint(f, 10, 32); err != nil {
			return newError(ErrMalformed, nil, `fleet: %s has "format": %.20s, not a format number; use "format": %d`, what, f, Format)
		}
		return newError(ErrUnsupportedFormat, nil,
			"fleet: %s has format %s but this build reads format %d only; upgrade %s, or publish format %d", what, f, Format, reader, Format)
	}
	if err := json.Unmarshal(b, v); err != nil {
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && te.Field != "" {
			// Fields of embedded structs come as "Status.phase"; the JSON is flat.
			field := te.Field
			for _, embedded := range []string{"Status.", "Event."} {
				field = strings.TrimPrefix(field, embedded)
			}
			return newError(ErrMalformed, err, "fleet: %s: field %q must be %s, got JSON %s", what, field, goTypeInJSON(te.Type.Kind().String()), te.Value)
		}
		return newError(ErrMalformed, err, "fleet: %s is not valid: %v", what, err)
	}
	return nil
}

// goTypeInJSON names a Go kind the way a person writing JSON thinks of it.
func goTypeInJSON(kind string) string {
	switch kind {
	case "int", "int8", "int16", "int32", "int64":
		return "a whole number"
	case "uint", "uint8", "uint16", "uint32", "uint64":
		return "a whole number ≥ 0"
	case "float32", "float64":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	}
	return "a " + kind
}

// jsonKind names the kind of JSON value in b, for error messages.
func jsonKind(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "nothing"
	}
	if !json.Valid(b) {
		return "invalid JSON"
	}
	switch b[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// encode marshals a payload this package produces and checks its size.
func encode(what string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("fleet: encode %s: %w", what, err)
	}
	if len(b) > MaxPayload {
		return nil, newError(ErrTooLarge, nil, "fleet: %s is %d bytes, over the %d-byte limit; keep it smaller", what, len(b), MaxPayload)
	}
	return b, nil
}
