package fleet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tern-iot/tern/runtime/api"
	"github.com/tern-iot/tern/runtime/state"
)

// Format is the format of the signed payloads the fleet sends devices
// (target envelopes, module releases, agent releases) that this build reads
// and writes; ReportFormat is the format of the reports devices send. Every
// payload carries its format in its "format" field. Fields may be added
// within a format (readers ignore fields they do not know); a change that
// an older reader would misread gets a new format number, and readers
// refuse formats they do not know instead of guessing.
//
// Format 2 added "prefix" and "fleet", which every signature covers, so
// that an envelope signed for one fleet is refused by the devices of every
// other: format 1 signatures did not cover them, so this build refuses
// format 1 envelopes (see docs/mqtt.md for the upgrade).
const Format = 2

// ReportFormat is the format of state and event reports. Format 2 did not
// change them, so they stay at 1 and readers of either build read them.
const ReportFormat = 1

// MaxVersion is the largest version a target, a module release or an agent
// release may carry: 2^53−1, the largest whole number a JSON reader that
// holds numbers as doubles (JavaScript, jq) carries exactly, so every
// version means the same to every reader. Versions only grow, so the
// ceiling is also a budget: tern's default versions (the time in
// milliseconds, about 2^41) last for ages. Parsers refuse versions above
// it.
const MaxVersion uint64 = 1<<53 - 1

// MaxPayload is the largest payload accepted, in bytes (256 KiB). Targets
// and reports are stored and parsed on small boards; anything bigger is a
// mistake, or an attack.
const MaxPayload = 256 << 10

// TargetEnvelope carries a target to a device. It is published retained,
// QoS 1, on the device's target topic ([Topics.DeviceTarget]).
//
//	{"format":2,"prefix":"tern","fleet":"demo","version":7,
//	 "target":{"relays":{"fan":{"on":true}}},"issued":"2025-11-24T13:00:00Z"}
type TargetEnvelope struct {
	// Format is always Format (2).
	Format int `json:"format"`
	// Prefix and Fleet name the fleet the envelope is for: the topic
	// prefix (never empty: DefaultPrefix is written out) and the fleet's
	// name. Both are required and covered by the signature; a device
	// refuses an envelope made for another fleet ([TargetEnvelope.CheckTopics]).
	// SetTopics fills them in; the Operator does for unsigned envelopes.
	Prefix string `json:"prefix"`
	Fleet  string `json:"fleet"`
	// Version orders the targets of one device: it starts at 1 and grows
	// with every push, up to MaxVersion. The device applies each version
	// once and refuses versions older than the one it holds, which makes
	// redelivery (retained messages, QoS 1 duplicates) harmless.
	Version uint64 `json:"version"`
	// Target is the desired state, a JSON object. It is partial: it names
	// only what the operator cares about; null deletes a key (JSON Merge
	// Patch, RFC 7386).
	Target json.RawMessage `json:"target"`
	// Replaces, when not 0, makes the envelope a rebase: it takes a device
	// that holds exactly version Replaces of this scope back to Version,
	// lower than Replaces, and the device then refuses every version from
	// Replaces up (a runaway version and any replay of it). It is how an
	// operator recovers a device from a version pushed far too high (up
	// to MaxVersion, after which nothing could follow): tern push
	// --replaces. Covered by the signature; on a device that holds any
	// other version it is refused.
	Replaces uint64 `json:"replaces,omitempty"`
	// SignedScope is the scope the envelope was signed for (Sign sets it):
	// "device/<id>" or "group/<name>". The signature covers the scope, so
	// this field only lets a device that receives the envelope on another
	// scope's topic say so, instead of reporting a bad signature.
	SignedScope string `json:"scope,omitempty"`
	// Rollout, when set, is the policy the target reaches the devices
	// under (waves, halts, maintenance windows; docs/rollouts.md),
	// covered by the signature.
	Rollout *Rollout `json:"rollout,omitempty"`
	// Issued is when the operator issued the target (RFC 3339), optional.
	// It is for people reading logs: versions order targets, clocks do not.
	Issued time.Time `json:"issued,omitzero"`
	// Key and Sig sign the envelope (see Sign): the operator key's id and
	// the ed25519 signature, base64. A device with trusted keys refuses
	// envelopes without them.
	Key string `json:"key,omitempty"`
	Sig []byte `json:"sig,omitempty"`
}

// StateReport is a device's report of itself: the fields of [api.Status]
// plus format and device id, in one flat JSON object. It is published
// retained, QoS 1, on the device's state topic ([Topics.State]), so the last
// report of every device is always there for an operator to read.
//
//	{"format":1,"device":"pi-001","time":"2025-11-24T13:00:05Z","target_version":7,
//	 "converged":true,"phase":"idle","state":{"relays":{"fan":{"on":true}}},"modules":{"relay":"1.2.0"}}
type StateReport struct {
	// Format is always ReportFormat (1).
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
	// phase, state, error, modules. See api.Status for each.
	api.Status
}

// EventReport is one step of a device's work: the fields of [api.Event]
// plus format and device id, in one flat JSON object. It is published QoS 1,
// not retained, on the device's events topic ([Topics.Events]).
//
//	{"format":1,"device":"pi-001","id":"01JD…","time":"2025-11-24T13:00:04Z",
//	 "kind":"task.done","target_version":7,"module":"relay","job":"switch","path":"/relays/fan"}
type EventReport struct {
	// Format is always ReportFormat (1).
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
	// module, job, path, message. See api.Event for each.
	api.Event
}

// ParseTargetEnvelope reads a target envelope received from the fleet. It
// refuses, with a message meant for the operator who pushed it: payloads over
// MaxPayload ([ErrTooLarge]), formats other than Format
// ([ErrUnsupportedFormat]), and ([ErrMalformed]) anything that is not a JSON
// object, a missing or bad "prefix" or "fleet", version 0 or above
// MaxVersion, and a target that is not a JSON object. Whether the envelope
// is for this fleet is CheckTopics' question; whether its signature holds,
// Verify's.
func ParseTargetEnvelope(b []byte) (TargetEnvelope, error) {
	const what = "target envelope"
	var env TargetEnvelope
	if err := decode(envelopeKind(what, "tern push or tern sign", MaxPayload, "keep it smaller"), b, &env); err != nil {
		return TargetEnvelope{}, err
	}
	if err := checkAddress(what, "tern push --fleet NAME", env.Prefix, env.Fleet); err != nil {
		return TargetEnvelope{}, err
	}
	if err := checkVersion(what, "push", env.Version); err != nil {
		return TargetEnvelope{}, err
	}
	if env.Replaces != 0 && env.Replaces <= env.Version {
		return TargetEnvelope{}, newError(ErrMalformed, nil,
			`fleet: %s version %d has "replaces": %d, which is not above it: a rebase takes a device back from a higher version to a lower one (tern push --replaces HELD --version LOWER)`, what, env.Version, env.Replaces)
	}
	if s := env.SignedScope; s != "" {
		kind, name, _ := strings.Cut(s, "/")
		if p := idProblem(name); (kind != "device" && kind != "group") || p != "" {
			return TargetEnvelope{}, newError(ErrMalformed, nil, `fleet: %s version %d: bad "scope" %.80q: want device/<id> or group/<name>`, what, env.Version, s)
		}
	}
	if err := checkRollout(fmt.Sprintf("%s version %d", what, env.Version), env.Rollout); err != nil {
		return TargetEnvelope{}, err
	}
	if k := jsonKind(env.Target); k != "an object" {
		return TargetEnvelope{}, newError(ErrMalformed, nil,
			`fleet: %s: "target" must be a JSON object (the desired state), got %s`, what, k)
	}
	// Whatever a device stores must parse again when it combines targets
	// (nesting, numbers): refuse it here, before anything is stored.
	if _, err := state.Parse(env.Target); err != nil {
		return TargetEnvelope{}, newError(ErrMalformed, err, `fleet: %s version %d: "target": %v`, what, env.Version, err)
	}
	return env, nil
}

// ParseStateReport reads a state report received from a device. It refuses
// payloads over MaxPayload, other formats, and reports without a valid
// device id or with an invalid group name.
func ParseStateReport(b []byte) (StateReport, error) {
	var r StateReport
	if err := decode(reportKind("state report"), b, &r); err != nil {
		return StateReport{}, err
	}
	if p := idProblem(r.Device); p != "" {
		return StateReport{}, newError(ErrMalformed, nil, `fleet: state report: bad "device": %s`, p)
	}
	for _, g := range r.Groups {
		if p := idProblem(g); p != "" {
			return StateReport{}, newError(ErrMalformed, nil, `fleet: state report of device %s: bad group in "groups": %s`, r.Device, p)
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
	if err := decode(reportKind(what), b, &r); err != nil {
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

// payloadKind says how to read one kind of payload and what to tell the
// person who sent a bad one.
type payloadKind struct {
	what   string // names the payload in messages: "target envelope"
	format int    // the format this build reads: Format or ReportFormat
	also   []int  // other formats it reads (ChunkedFormat for releases)
	reader string // the program to upgrade when the format is newer
	maker  string // the commands that make it, when the format is older
	limit  int    // the largest payload, in bytes
	fix    string // what to do about a payload over limit
}

// envelopeKind is the kind of a signed payload the fleet sends devices:
// ternd reads it, maker makes it.
func envelopeKind(what, maker string, limit int, fix string) payloadKind {
	return payloadKind{what: what, format: Format, reader: "ternd on the device", maker: maker, limit: limit, fix: fix}
}

// reportKind is the kind of a report a device sends: tern reads it.
func reportKind(what string) payloadKind {
	return payloadKind{what: what, format: ReportFormat, reader: "tern", maker: "ternd", limit: MaxPayload, fix: "keep it smaller"}
}

// decode checks size and format, then unmarshals b into v.
func decode(k payloadKind, b []byte, v any) error {
	what, limit, fix := k.what, k.limit, k.fix
	if len(b) > limit {
		return newError(ErrTooLarge, nil, "fleet: %s is %d bytes, over the %d-byte limit; %s", what, len(b), limit, fix)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return newError(ErrMalformed, nil, `fleet: %s is empty; expected a JSON object with "format": %d`, what, k.format)
	}
	var head struct {
		Format json.RawMessage `json:"format"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		if got := jsonKind(b); got != "an object" && got != "invalid JSON" {
			return newError(ErrMalformed, nil, "fleet: %s must be a JSON object, got %s", what, got)
		}
		return newError(ErrMalformed, err, "fleet: %s is not valid JSON: %v", what, err)
	}
	switch f := string(head.Format); {
	case f == strconv.Itoa(k.format):
	case slices.ContainsFunc(k.also, func(n int) bool { return f == strconv.Itoa(n) }):
	case f == "" || f == "null":
		return newError(ErrMalformed, nil, `fleet: %s has no "format"; add "format": %d`, what, k.format)
	default:
		n, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			return newError(ErrMalformed, nil, `fleet: %s has "format": %.20s, not a format number; use "format": %d`, what, f, k.format)
		}
		if n >= 1 && n < uint64(k.format) && k.format == Format {
			return newError(ErrUnsupportedFormat, nil,
				`fleet: %s has format %s, which this build no longer reads: its signature does not cover the fleet and topic prefix, so it could be replayed into another fleet; make it again with a tern that writes format %d (%s), with "prefix" and "fleet"`,
				what, f, k.format, k.maker)
		}
		return newError(ErrUnsupportedFormat, nil,
			"fleet: %s has format %s but this build reads format %d only; upgrade %s, or publish format %d", what, f, k.format, k.reader, k.format)
	}
	if err := json.Unmarshal(b, v); err != nil {
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && te.Field != "" {
			// Fields of embedded structs come as "Status.phase"; the JSON is flat.
			field := te.Field
			for _, embedded := range []string{"Status.", "Event."} {
				field = strings.TrimPrefix(field, embedded)
			}
			if msg := numberProblem(te); msg != "" {
				return newError(ErrMalformed, err, "fleet: %s: field %q %s", what, field, msg)
			}
			return newError(ErrMalformed, err, "fleet: %s: field %q must be %s, got JSON %s", what, field, goTypeInJSON(te.Type.Kind().String()), te.Value)
		}
		return newError(ErrMalformed, err, "fleet: %s is not valid: %v", what, err)
	}
	return nil
}

// numberProblem says what is wrong with a JSON number that did not fit a
// whole-number field (a version, a size): a fraction or exponent, a sign,
// or a value too large. "" if the value was not a number.
func numberProblem(te *json.UnmarshalTypeError) string {
	lit, ok := strings.CutPrefix(te.Value, "number ")
	if !ok {
		return ""
	}
	k := te.Type.Kind().String()
	unsigned := strings.HasPrefix(k, "uint")
	switch {
	case strings.ContainsAny(lit, ".eE"):
		return fmt.Sprintf("must be a whole number written in digits only, got %.40s (write 20, not 2e1 or 20.0)", lit)
	case unsigned && strings.HasPrefix(lit, "-"):
		return fmt.Sprintf("must not be negative, got %.40s", lit)
	case strings.HasSuffix(te.Field, "version") || te.Field == "replaces":
		return fmt.Sprintf("is %.40s, above the largest version, %d (2^53-1)", lit, MaxVersion)
	default:
		return fmt.Sprintf("is %.40s, too large for it", lit)
	}
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

// checkVersion refuses version 0 and versions above MaxVersion in a
// payload; verb says how the operator makes a new one ("push").
func checkVersion(what, verb string, v uint64) error {
	if v == 0 {
		return newError(ErrMalformed, nil,
			`fleet: %s has version 0 or no "version"; versions start at 1 and grow with every %s`, what, verb)
	}
	if v > MaxVersion {
		return newError(ErrMalformed, nil,
			`fleet: %s has version %d, above the largest version, %d (2^53-1, the largest whole number every JSON reader carries exactly); %s it again with a version of at most %d (tern's default, the time in milliseconds, is far below)`,
			what, v, MaxVersion, verb, MaxVersion)
	}
	return nil
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
