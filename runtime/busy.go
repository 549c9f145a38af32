package runtime

import (
	"fmt"
	"strings"

	"github.com/tern-iot/tern/runtime/state"
)

// BusyReason says why the device is busy, "" when it is not: what its
// modules' busy sensors (sdk.BusySensor) last reported, as of the loop's
// last step. ternd defers the disruptive changes of rollouts while it is
// not empty (docs/rollouts.md).
func (a *Agent) BusyReason() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.busyWhy
}

// updateBusy reads the busy sensors' values in the sensed state. It runs
// on the loop, which owns the module set.
func (a *Agent) updateBusy() {
	var why []string
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, m := range a.set.mods {
		for _, s := range m.sensors {
			if !s.spec.Busy {
				continue
			}
			v, _ := state.Get(a.current, s.path)
			switch v := v.(type) {
			case bool:
				if v {
					why = append(why, fmt.Sprintf("%s (%s %s)", s.spec.Path, m.name, s.spec.Name))
				}
			case string:
				if v != "" {
					why = append(why, fmt.Sprintf("%s (%s %s: %.200s)", s.spec.Path, m.name, s.spec.Name, v))
				}
			}
		}
	}
	a.busyWhy = strings.Join(why, "; ")
}
