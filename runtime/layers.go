package runtime

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/tern-iot/tern/runtime/layer"
)

// layering is the target as it came (base) and its conditional layers;
// the agent pursues base with the active layers over it (Agent.target).
// Guarded by Agent.mu.
type layering struct {
	base     any
	layers   []layer.Layer
	active   []string  // layer.Layer.ID of those active, in order
	problems []string  // layers that can never be active here, and why
	next     time.Time // the next edge of a window of a layer whose facts match; zero: none
}

// SetLayeredTarget is SetTarget with conditional layers over the target
// (package runtime/layer; ternd gives the layers of every scope it
// combines, groups first): the agent evaluates them by Options.Clock at
// every step, and whenever the set of active layers changes it pursues
// the target with the active ones laid over it, in order, re-planning
// with a reason that names the layers that changed. The layers are stored
// with the target, so they keep applying offline and after a restart. A
// non-empty rebase makes it ReplaceTarget.
func (a *Agent) SetLayeredTarget(version uint64, doc json.RawMessage, layers []layer.Layer, rebase string) error {
	return a.setTarget(version, doc, rebase, layers)
}

// setLayered holds base and its layers and makes the target base with
// the layers active now. Call it with a.mu held, or before Run.
func (a *Agent) setLayered(base any, ls []layer.Layer) {
	e := layer.Evaluate(ls, a.opts.Facts, a.opts.Clock())
	a.lay = layering{base: base, layers: ls, active: e.Active, problems: e.Problems, next: e.Next}
	a.target = e.Apply(base)
}

// layersTick evaluates the layers by the wall clock. When the active set
// changed, the target does too, and the next plan says which layer
// became active or inactive: the state may meet the old target, so the
// change is no drift.
func (a *Agent) layersTick() {
	now := a.opts.Clock()
	a.mu.Lock()
	if a.lay.base == nil || len(a.lay.layers) == 0 {
		a.mu.Unlock()
		return
	}
	e := layer.Evaluate(a.lay.layers, a.opts.Facts, now)
	a.lay.problems, a.lay.next = e.Problems, e.Next
	if slices.Equal(e.Active, a.lay.active) {
		a.mu.Unlock()
		return
	}
	why := layer.Why(a.lay.active, e.Active)
	a.lay.active = e.Active
	a.target = e.Apply(a.lay.base)
	a.replan = why
	a.converged = false
	a.failures, a.nextTry = 0, time.Time{}
	version := a.version
	a.mu.Unlock()
	a.log.Info("target layers changed", "target_version", version, "why", why, "active", e.Active)
}

// layerStatus fills the status's layer fields. Call it with a.mu held.
func (a *Agent) layerStatus(s *Status) {
	s.Layers = slices.Clone(a.lay.active)
	s.LayerProblems = slices.Clone(a.lay.problems)
}

// layersWait is how long until the next edge of a layer's window by the
// wall clock (at least 10 ms: a wall clock a little behind the timers'
// wakes the loop a few times before the edge, not in a tight loop); ok
// is false when no window can change the active layers.
func (a *Agent) layersWait() (d time.Duration, ok bool) {
	a.mu.Lock()
	next := a.lay.next
	a.mu.Unlock()
	if next.IsZero() {
		return 0, false
	}
	return max(next.Sub(a.opts.Clock()), 10*time.Millisecond), true
}

// layers returns the channel of the next edge of a layer's window, nil if
// none: a window that opens takes effect then, not at the next heartbeat
// of an agent with nothing to sense.
func (l *loopTimer) layers(a *Agent) <-chan time.Time {
	d, ok := a.layersWait()
	if !ok {
		return nil
	}
	if l.layer == nil {
		l.layer = time.NewTimer(d)
	} else {
		l.layer.Reset(d)
	}
	return l.layer.C
}
