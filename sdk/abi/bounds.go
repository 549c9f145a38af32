package abi

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Bounds on a manifest. The manifest comes from the module and travels in
// the agent's events and state reports, which must fit one MQTT payload:
// every field a module chooses has a limit, and so has the whole. The
// modules in plugins/ use less than a tenth of each. See sdk/ABI.md, "Limits".
const (
	MaxManifestBytes    = 64 << 10 // the whole manifest, encoded as JSON
	MaxNameBytes        = 128      // the module's name, each job's and sensor's
	MaxVersionBytes     = 64
	MaxPathBytes        = 1024 // a job's or a sensor's path pattern
	MaxDescriptionBytes = 1024 // a job's description
	MaxJobs             = 256
	MaxSensors          = 64
	MaxResources        = 16 // entries of "resources" (three kinds; repeats allowed)
	// maxWordBytes bounds the fields whose legal values are a few short
	// words (op, kind, condition, effect, a resource kind), so that the
	// message refusing an unknown one stays short.
	maxWordBytes = 32
)

// checkBounds refuses a manifest with a field or a count over its limit.
// It runs before anything else quotes a field in an error.
func (m Manifest) checkBounds() error {
	where := "sdk: manifest"
	if len(m.Name) <= MaxNameBytes {
		where = "sdk: module " + m.Name + ": manifest"
	}
	field := func(list string, i int, name, s string, limit int) error {
		if len(s) <= limit {
			return nil
		}
		if list != "" {
			name = fmt.Sprintf("%s[%d].%s", list, i, name)
		}
		return fmt.Errorf("%s: %s is %d bytes, at most %d", where, name, len(s), limit)
	}
	count := func(list string, n, limit int) error {
		if n <= limit {
			return nil
		}
		return fmt.Errorf("%s: %d %s, at most %d", where, n, list, limit)
	}
	errs := []error{
		field("", 0, "name", m.Name, MaxNameBytes),
		field("", 0, "version", m.Version, MaxVersionBytes),
		count("jobs", len(m.Jobs), MaxJobs),
		count("sensors", len(m.Sensors), MaxSensors),
		count("resources", len(m.Resources), MaxResources),
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	for i, j := range m.Jobs {
		for _, err := range []error{
			field("jobs", i, "name", j.Name, MaxNameBytes),
			field("jobs", i, "path", j.Path, MaxPathBytes),
			field("jobs", i, "description", j.Description, MaxDescriptionBytes),
			field("jobs", i, "op", string(j.Op), maxWordBytes),
			field("jobs", i, "kind", string(j.Kind), maxWordBytes),
			field("jobs", i, "condition", j.Condition, maxWordBytes),
			field("jobs", i, "effect", j.Effect, maxWordBytes),
		} {
			if err != nil {
				return err
			}
		}
	}
	for i, s := range m.Sensors {
		if err := field("sensors", i, "name", s.Name, MaxNameBytes); err != nil {
			return err
		}
		if err := field("sensors", i, "path", s.Path, MaxPathBytes); err != nil {
			return err
		}
	}
	for i, r := range m.Resources {
		if err := field("resources", i, "kind", r, maxWordBytes); err != nil {
			return err
		}
	}
	// Each field within its limit can still add up to too much.
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if len(b) > MaxManifestBytes {
		return fmt.Errorf("%s: %d bytes as JSON, at most %d", where, len(b), MaxManifestBytes)
	}
	return nil
}

// Truncate cuts s, text that came from a module, to at most n bytes (at a
// UTF-8 boundary) followed by a marker saying how much was cut, e.g.
// "…(cut 12345 bytes)"; s no longer than n is returned as it is. The
// marker is at most 34 bytes.
func Truncate(s string, n int) string {
	n = max(n, 0)
	if len(s) <= n {
		return s
	}
	i := n
	// Back off to the start of the rune that n falls in; at most
	// utf8.UTFMax-1 bytes, whatever s holds.
	for k := 0; k < utf8.UTFMax-1 && i > 0 && !utf8.RuneStart(s[i]); k++ {
		i--
	}
	if !utf8.RuneStart(s[i]) {
		i = n // not UTF-8 there anyway: cut where asked
	}
	cut := len(s) - i
	unit := "bytes"
	if cut == 1 {
		unit = "byte"
	}
	return s[:i] + "…(cut " + strconv.Itoa(cut) + " " + unit + ")"
}
