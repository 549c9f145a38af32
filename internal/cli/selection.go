package cli

import (
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/tern-iot/tern/fleet"
)

// selection is --where: conditions on what devices say of themselves in
// their retained state reports, all of which a device must meet. It is
// the one selection of every command that reads devices (tern
// inventory, status, watch, job who): a condition names a key, one of
// selectionKeys or else a fact, and a value it must (key=value) or must
// not (key!=value) have.
type selection []condition

type condition struct {
	key, value string
	not        bool
}

// selectionKeys are the keys a device's own fields answer; any other key
// is a fact (Status.Facts).
var selectionKeys = []string{"device", "group", "version", "arch", "board", "kernel", "store"}

// maxConditions bounds --where: a command line is outside input too.
const maxConditions = 32

// whereFlag registers --where on fs.
func whereFlag(fs *flag.FlagSet) *selection {
	s := &selection{}
	fs.Var(s, "where", "select devices by `KEY=VALUE` or KEY!=VALUE (repeatable, all must hold); keys: device, group, version (ternd's), arch, board, kernel, store, or any fact")
	return s
}

func (s *selection) String() string {
	var parts []string
	for _, c := range *s {
		op := "="
		if c.not {
			op = "!="
		}
		parts = append(parts, c.key+op+c.value)
	}
	return strings.Join(parts, " ")
}

// Set parses one condition.
func (s *selection) Set(v string) error {
	if len(*s) == maxConditions {
		return fmt.Errorf("more than %d conditions", maxConditions)
	}
	i := strings.IndexByte(v, '=')
	if i <= 0 {
		return fmt.Errorf("%q is not KEY=VALUE or KEY!=VALUE, e.g. --where arch=armv6 or --where site!=mill", v)
	}
	c := condition{key: v[:i], value: v[i+1:]}
	if strings.HasSuffix(c.key, "!") {
		c.key, c.not = strings.TrimSuffix(c.key, "!"), true
	}
	if c.key == "" || strings.ContainsAny(c.key, " \t!=") {
		return fmt.Errorf("%q: the key %q is not a key; use device, group, version, arch, board, kernel, store or a fact's name", v, c.key)
	}
	*s = append(*s, c)
	return nil
}

// matches reports whether the device id, with its last state report
// (nil: none yet), meets every condition. A device that has not reported
// meets only conditions on its id: nothing else is known of it.
func (s selection) matches(id string, rep *fleet.StateReport) bool {
	for _, c := range s {
		var values []string
		switch {
		case c.key == "device":
			values = []string{id}
		case rep == nil:
			return false
		default:
			values = deviceValues(rep, c.key)
		}
		if slices.Contains(values, c.value) == c.not {
			return false
		}
	}
	return true
}

// deviceValues are the values a state report gives key: the groups for
// group, the agent block's fields, else the fact's value; none when the
// report does not say.
func deviceValues(rep *fleet.StateReport, key string) []string {
	one := func(v string) []string {
		if v == "" {
			return nil
		}
		return []string{v}
	}
	if key == "group" {
		return rep.Groups
	}
	if a := rep.Agent; a != nil {
		switch key {
		case "version":
			return one(a.Version)
		case "arch":
			return one(a.Arch)
		case "board":
			return one(a.Board)
		case "kernel":
			return one(a.Kernel)
		case "store":
			return one(a.Store)
		}
	}
	if slices.Contains(selectionKeys, key) {
		return nil
	}
	return one(rep.Facts[key])
}
