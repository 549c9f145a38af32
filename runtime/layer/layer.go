package layer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/tern-iot/tern/runtime/state"
	"github.com/tern-iot/tern/runtime/window"
)

// Bounds of the layers of one envelope. The envelope's size bound
// (fleet.MaxPayload) bounds their bytes; state.Parse bounds the nesting
// of each layer's target.
const (
	MaxLayers  = 32 // layers in one envelope
	MaxFacts   = 16 // fact conditions in one layer
	MaxNameLen = 64 // a layer's name, a fact's name, a fact's wanted value
)

// ErrBad wraps every error of Parse.
var ErrBad = errors.New("layer: bad layers")

// Layer is one conditional part of a target.
//
//	{"name": "night", "when": {"window": {"from": "22:00", "to": "06:00", "zone": "Europe/Berlin"},
//	 "facts": {"board": "rpi4"}}, "target": {"relays": {"fan": {"on": false}}}}
type Layer struct {
	// Scope is the scope whose envelope carried the layer ("group/north",
	// "device/pi-001"); the device sets it, it is not on the wire.
	Scope string `json:"scope,omitempty"`
	// Name names the layer within its scope: 1 to 64 characters of
	// A-Z a-z 0-9 . _ -.
	Name string `json:"name"`
	// When holds the conditions, all of which must hold. No condition:
	// always active.
	When When `json:"when"`
	// Target is laid over the target while the layer is active.
	Target json.RawMessage `json:"target"`

	doc any // Target, parsed
}

// When is a layer's conditions.
type When struct {
	// Window, if set, must be open.
	Window *window.Window `json:"window,omitempty"`
	// Facts, if set, must each match a fact the device knows: a fact's
	// name → the value wanted. "group" matches when the device is in
	// that group. A fact the device does not know never matches.
	Facts map[string]string `json:"facts,omitempty"`
}

// ID is how reports name the layer: "<scope>/<name>", or the name when it
// has no scope.
func (l Layer) ID() string {
	if l.Scope == "" {
		return l.Name
	}
	return l.Scope + "/" + l.Name
}

// Parse reads the "layers" of an envelope of scope (which it sets on
// each): a JSON array of layers. Empty or null input is no layers. It
// refuses, wrapping ErrBad, more than MaxLayers layers, names that are
// empty, too long, not plain or given twice, a "when" with a condition
// this build does not know (an older device must not take a condition it
// cannot evaluate for one that always holds), a bad window, more than
// MaxFacts facts, and a target that is not a JSON object.
func Parse(b []byte, scope string) ([]Layer, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return nil, nil
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(b, &raws); err != nil {
		return nil, fmt.Errorf(`%w: "layers" must be a JSON array of {"name", "when", "target"}: %v`, ErrBad, err)
	}
	if len(raws) > MaxLayers {
		return nil, fmt.Errorf(`%w: %d layers, over the limit of %d; fold some together`, ErrBad, len(raws), MaxLayers)
	}
	out := make([]Layer, 0, len(raws))
	seen := map[string]bool{}
	for i, raw := range raws {
		l, err := parseOne(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: layer %d%s: %v", ErrBad, i+1, named(l.Name), err)
		}
		if seen[l.Name] {
			return nil, fmt.Errorf("%w: layer %d: name %q is used twice; each layer of a target needs its own name", ErrBad, i+1, l.Name)
		}
		seen[l.Name] = true
		l.Scope = scope
		out = append(out, l)
	}
	return out, nil
}

func named(name string) string {
	if name == "" || nameProblem(name) != "" {
		return ""
	}
	return fmt.Sprintf(" (%s)", name)
}

func parseOne(raw json.RawMessage) (Layer, error) {
	var l struct {
		Name   string          `json:"name"`
		When   json.RawMessage `json:"when"`
		Target json.RawMessage `json:"target"`
	}
	if err := json.Unmarshal(raw, &l); err != nil {
		return Layer{}, fmt.Errorf(`want an object {"name", "when", "target"}: %v`, err)
	}
	out := Layer{Name: l.Name}
	if p := nameProblem(l.Name); p != "" {
		return out, fmt.Errorf(`"name": %s`, p)
	}
	if w := bytes.TrimSpace(l.When); len(w) > 0 && string(w) != "null" {
		d := json.NewDecoder(bytes.NewReader(w))
		d.DisallowUnknownFields()
		if err := d.Decode(&out.When); err != nil {
			return out, fmt.Errorf(`"when": %v; the conditions this device knows are "window" and "facts" (upgrade ternd for others)`, err)
		}
	}
	if len(out.When.Facts) > MaxFacts {
		return out, fmt.Errorf(`"when": %d facts, over the limit of %d`, len(out.When.Facts), MaxFacts)
	}
	for _, k := range slices.Sorted(maps.Keys(out.When.Facts)) {
		if p := nameProblem(k); p != "" {
			return out, fmt.Errorf(`"when": fact name: %s`, p)
		}
		if v := out.When.Facts[k]; v == "" || len(v) > MaxNameLen {
			return out, fmt.Errorf(`"when": fact %q: the wanted value must be 1 to %d bytes`, k, MaxNameLen)
		}
	}
	doc, err := state.Parse(l.Target)
	if err == nil {
		if _, ok := doc.(map[string]any); !ok {
			err = errors.New("not a JSON object")
		}
	}
	if err != nil {
		return out, fmt.Errorf(`"target" must be a JSON object, the part of the target the layer sets: %v`, err)
	}
	out.Target, out.doc = state.Canonical(doc), doc
	return out, nil
}

// CheckFact says what is wrong with a fact a device declares (ternd.yaml's
// facts): its name as a layer's name, its value 1 to MaxNameLen bytes.
func CheckFact(name, value string) error {
	if p := nameProblem(name); p != "" {
		return fmt.Errorf("fact name %s", p)
	}
	if value == "" || len(value) > MaxNameLen {
		return fmt.Errorf("fact %q: the value must be 1 to %d bytes", name, MaxNameLen)
	}
	return nil
}

// nameProblem says what is wrong with a layer's or fact's name, or "".
func nameProblem(s string) string {
	if s == "" || len(s) > MaxNameLen {
		return fmt.Sprintf("%.20q must be 1 to %d characters", s, MaxNameLen)
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Sprintf("%.70q has %q; use A-Z a-z 0-9 . _ -", s, c)
		}
	}
	return ""
}

// Marshal writes layers as Parse reads them, scope included (a device
// stores them so); Parse ignores the scope it reads back and sets its own.
func Marshal(ls []Layer) ([]byte, error) {
	if len(ls) == 0 {
		return nil, nil
	}
	return json.Marshal(ls)
}

// Unmarshal reads layers written by Marshal, their scopes kept.
func Unmarshal(b []byte) ([]Layer, error) {
	ls, err := Parse(b, "")
	if err != nil || len(ls) == 0 {
		return nil, err
	}
	var scopes []struct {
		Scope string `json:"scope"`
	}
	if err := json.Unmarshal(b, &scopes); err != nil {
		return nil, err
	}
	for i := range ls {
		ls[i].Scope = scopes[i].Scope
	}
	return ls, nil
}

// Facts are what a device knows about itself: a fact's name → its values.
// Most facts have one value ("board": ["rpi4"]); "group" has one per group
// the device is in. A layer's wanted value matches when it is among them.
type Facts map[string][]string

// Standard facts every ternd knows.
const (
	FactDevice = "device" // the device's id
	FactBoard  = "board"  // its board model (boards/: rpi4, rpi5, …)
	FactArch   = "arch"   // its architecture (GOARCH: arm64, arm, amd64)
	FactGroup  = "group"  // each group it is in
)

// match reports whether every wanted fact matches, and if not, the first
// reason (sorted by fact name), with unknown when a fact is not known.
func (f Facts) match(want map[string]string) (ok bool, why string, unknown bool) {
	for _, k := range slices.Sorted(maps.Keys(want)) {
		have, known := f[k]
		if !known {
			return false, fmt.Sprintf("fact %q is not known on this device (it knows %s; add it under facts: in ternd.yaml)", k, strings.Join(slices.Sorted(maps.Keys(f)), ", ")), true
		}
		if !slices.Contains(have, want[k]) {
			return false, fmt.Sprintf("fact %q is %q, not %q", k, strings.Join(have, ","), want[k]), false
		}
	}
	return true, "", false
}

// Eval is the layers' state at one instant.
type Eval struct {
	// Active names the active layers (Layer.ID), in the order they apply.
	Active []string
	// Problems says, for each layer that can never be active on this
	// device as configured (a fact it does not know), why.
	Problems []string
	// Inactive says, for each layer not active, why: "<id>: <reason>".
	Inactive []string
	// Next is the next instant a window of a layer whose facts match
	// opens or closes, when Active may change by the clock alone; zero:
	// never.
	Next time.Time

	layers []Layer
	on     []bool
}

// Evaluate evaluates ls at t with the device's facts.
func Evaluate(ls []Layer, f Facts, t time.Time) Eval {
	e := Eval{layers: ls, on: make([]bool, len(ls))}
	for i, l := range ls {
		ok, why, unknown := f.match(l.When.Facts)
		if unknown {
			e.Problems = append(e.Problems, l.ID()+": "+why)
		}
		if !ok {
			e.Inactive = append(e.Inactive, l.ID()+": "+why)
			continue
		}
		if w := l.When.Window; w != nil {
			if n := w.Next(t); !n.IsZero() && (e.Next.IsZero() || n.Before(e.Next)) {
				e.Next = n
			}
			if !w.Open(t) {
				e.Inactive = append(e.Inactive, fmt.Sprintf("%s: window %v is closed; it opens %s", l.ID(), w, opens(w, t)))
				continue
			}
		}
		e.on[i] = true
		e.Active = append(e.Active, l.ID())
	}
	return e
}

func opens(w *window.Window, t time.Time) string {
	n := w.Next(t)
	if n.IsZero() {
		return "never"
	}
	return n.In(t.Location()).Format(time.RFC3339)
}

// Apply returns base with every active layer laid over it, in order. base
// is not changed.
func (e Eval) Apply(base any) any {
	out := state.Clone(base)
	for i, l := range e.layers {
		if e.on[i] {
			doc := l.doc
			if doc == nil {
				doc, _ = state.Parse(l.Target)
			}
			out = state.Overlay(out, doc)
		}
	}
	return out
}

// Why says what changed between the active layers of was and now, for a
// re-plan's reason: "layer group/north/night became active; layer …
// became inactive".
func Why(was, now []string) string {
	var parts []string
	for _, id := range now {
		if !slices.Contains(was, id) {
			parts = append(parts, "layer "+id+" became active")
		}
	}
	for _, id := range was {
		if !slices.Contains(now, id) {
			parts = append(parts, "layer "+id+" became inactive")
		}
	}
	return strings.Join(parts, "; ")
}
