package fleet

import (
	"errors"
	"fmt"
	"strings"
)

// DefaultPrefix is the first topic level when [Topics.Prefix] is empty.
const DefaultPrefix = "tern"

// maxIDLen is the longest device id, fleet, group or module name.
const maxIDLen = 64

// Topics names the MQTT topics of one fleet. The zero Prefix means
// [DefaultPrefix]; Fleet is required. Methods build names without checking
// them: call [Topics.Validate] and [ValidID] first, as [NewDevice] and
// [DialOperator] do.
type Topics struct {
	// Prefix is the first level(s) of every topic, e.g. "tern" or
	// "acme/tern". Empty means DefaultPrefix.
	Prefix string
	// Fleet names the fleet; several fleets can share a broker.
	Fleet string
}

// DeviceTarget is where a device's target envelope is published, retained:
// <prefix>/<fleet>/devices/<id>/target.
func (t Topics) DeviceTarget(id string) string { return t.device(id, "target") }

// GroupTarget is where a group's target envelope is published, retained:
// <prefix>/<fleet>/groups/<group>/target.
func (t Topics) GroupTarget(group string) string {
	return t.base() + "/groups/" + group + "/target"
}

// DeviceJob is where a job for one device is published, retained:
// <prefix>/<fleet>/devices/<id>/jobs/<job>.
func (t Topics) DeviceJob(id, job string) string { return t.device(id, "jobs/"+job) }

// GroupJob is where a job for a group is published, retained:
// <prefix>/<fleet>/groups/<group>/jobs/<job>.
func (t Topics) GroupJob(group, job string) string {
	return t.base() + "/groups/" + group + "/jobs/" + job
}

// JobStatus is where a device reports a job's status, retained:
// <prefix>/<fleet>/devices/<id>/jobstatus/<job>.
func (t Topics) JobStatus(id, job string) string { return t.device(id, "jobstatus/"+job) }

// Module is where a module release is published, retained:
// <prefix>/<fleet>/modules/<name>.
func (t Topics) Module(name string) string { return t.base() + "/modules/" + name }

// Agent is where the agent (ternd) releases for an architecture are
// published, retained: <prefix>/<fleet>/agent/<arch>.
func (t Topics) Agent(arch string) string { return t.base() + "/agent/" + arch }

// State is where a device publishes its [StateReport], retained:
// <prefix>/<fleet>/devices/<id>/state.
func (t Topics) State(id string) string { return t.device(id, "state") }

// Events is where a device publishes [EventReport]s, not retained:
// <prefix>/<fleet>/devices/<id>/events.
func (t Topics) Events(id string) string { return t.device(id, "events") }

// Online is where a device says whether it is connected, retained: "true"
// on connect, "false" on a clean exit or, through the broker, as its last
// will: <prefix>/<fleet>/devices/<id>/online.
func (t Topics) Online(id string) string { return t.device(id, "online") }

func (t Topics) prefix() string {
	if t.Prefix == "" {
		return DefaultPrefix
	}
	return t.Prefix
}

func (t Topics) base() string { return t.prefix() + "/" + t.Fleet }

func (t Topics) devices() string { return t.base() + "/devices/" }

func (t Topics) device(id, leaf string) string { return t.devices() + id + "/" + leaf }

// deviceOf returns the device id in a topic built by t.device, or "".
func (t Topics) deviceOf(topic string) string {
	rest, ok := strings.CutPrefix(topic, t.devices())
	if !ok {
		return ""
	}
	id, _, ok := strings.Cut(rest, "/")
	if !ok {
		return ""
	}
	return id
}

// Validate reports whether the prefix and the fleet name make usable topics.
// The prefix is one or more levels separated by "/", each following the
// rules of [ValidID].
func (t Topics) Validate() error {
	if p := idProblem(t.Fleet); p != "" {
		return fmt.Errorf("fleet: fleet name: %s", p)
	}
	if t.Prefix == "" {
		return nil
	}
	for level := range strings.SplitSeq(t.Prefix, "/") {
		if p := idProblem(level); p != "" {
			return fmt.Errorf("fleet: topic prefix %q: levels are separated by single slashes, no leading or trailing slash: %s", t.Prefix, p)
		}
	}
	return nil
}

// ValidID reports whether s can name a device, a fleet, a group or a module:
// 1 to 64 characters of A-Z a-z 0-9 . _ -. That keeps names safe in one MQTT
// topic level (no wildcards "+" "#", no separator "/", no "$" prefix) and in
// file names and shells.
func ValidID(s string) error {
	if p := idProblem(s); p != "" {
		return errors.New("fleet: " + p)
	}
	return nil
}

// idProblem says what is wrong with s as a name, or "" if nothing is.
func idProblem(s string) string {
	if s == "" {
		return "empty name; device ids, fleet, group and module names need 1 to 64 characters of A-Z a-z 0-9 . _ -"
	}
	if len(s) > maxIDLen {
		return fmt.Sprintf("name %.20q… is %d bytes long; the limit is %d", s, len(s), maxIDLen)
	}
	for i, c := range s {
		if !idRune(c) {
			hint := ""
			switch c {
			case '+', '#':
				hint = " (an MQTT wildcard)"
			case '/':
				hint = " (the MQTT level separator)"
			}
			return fmt.Sprintf("name %q has %q at byte %d%s; use only A-Z a-z 0-9 . _ -", s, c, i, hint)
		}
	}
	return ""
}

func idRune(c rune) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == '-'
}
