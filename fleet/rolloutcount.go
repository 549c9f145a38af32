package fleet

import (
	"slices"
	"strings"
	"time"

	"github.com/tern-iot/tern/runtime/api"
)

// RolloutUnreported is the phase of a device in a rollout's scope that
// has not reported the rollout: it has not received the change yet, or
// runs a ternd that predates rollouts.
const RolloutUnreported api.RolloutPhase = "unreported"

// RolloutDevice is where one device is with a rollout, as its state
// report says.
type RolloutDevice struct {
	Device string           `json:"device"`
	Wave   int              `json:"wave"` // from 1
	Phase  api.RolloutPhase `json:"phase"`
	Why    string           `json:"why,omitempty"`
	Since  time.Time        `json:"since,omitzero"`
	// Applied is when the device let the change through, by its clock.
	Applied time.Time `json:"applied,omitzero"`
}

// DeviceOf says where the device of report r is with the rollout, and
// whether it is in the rollout's scope at all: a device or group scope's
// device or members (as the report lists its groups), a module's devices
// (those that run it), or any device that reports the rollout.
func (c RolloutControl) DeviceOf(r StateReport) (RolloutDevice, bool) {
	st, reported := r.Rollouts[c.Rollout]
	kind, name, _ := strings.Cut(c.Scope, "/")
	in := reported
	switch kind {
	case "device":
		in = in || r.Device == name
	case "group":
		in = in || slices.Contains(r.Groups, name)
	case "module":
		_, runs := r.Modules[name]
		in = in || runs
	}
	if !in {
		return RolloutDevice{}, false
	}
	d := RolloutDevice{Device: r.Device, Phase: RolloutUnreported}
	if c.Policy != nil {
		d.Wave = c.Policy.Wave(r.Device) + 1
	}
	if reported {
		d.Wave, d.Phase, d.Why, d.Since, d.Applied = st.Wave, st.Phase, st.Why, st.Since, st.Applied
	}
	return d, true
}

// RolloutCounts are a rollout's devices by phase, per wave and in all.
type RolloutCounts struct {
	Waves  []map[api.RolloutPhase]int `json:"waves"`
	Totals map[api.RolloutPhase]int   `json:"totals"`
}

// Count counts ds by wave and phase.
func (c RolloutControl) Count(ds []RolloutDevice) RolloutCounts {
	n := 1
	if c.Policy != nil {
		n = len(c.Policy.Waves)
	}
	out := RolloutCounts{Totals: map[api.RolloutPhase]int{}}
	for range n {
		out.Waves = append(out.Waves, map[api.RolloutPhase]int{})
	}
	for _, d := range ds {
		w := min(max(d.Wave, 1), n) - 1
		out.Waves[w][d.Phase]++
		out.Totals[d.Phase]++
	}
	return out
}

// Finished returns how many devices succeeded and how many failed.
func (rc RolloutCounts) Finished() (succeeded, failed int) {
	return rc.Totals[api.RolloutSucceeded], rc.Totals[api.RolloutFailed]
}

// Trips reports whether the rollout's abort rule, if it has one, halts it
// at these counts.
func (c RolloutControl) Trips(rc RolloutCounts) bool {
	if c.Policy == nil || c.Policy.Abort == nil {
		return false
	}
	return c.Policy.Abort.Trips(rc.Finished())
}
