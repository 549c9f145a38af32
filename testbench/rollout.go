package testbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/runtime/api"
	"github.com/tern-iot/tern/runtime/window"
)

// rollouts are the rollouts the timeline started: the latest control of
// each, which the steps and the watchers read and advance.
type rollouts struct {
	mu   sync.Mutex
	ctls map[string]fleet.RolloutControl
}

func (rs *rollouts) get(id string) (fleet.RolloutControl, bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	c, ok := rs.ctls[id]
	return c, ok
}

func (rs *rollouts) put(c fleet.RolloutControl) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.ctls == nil {
		rs.ctls = map[string]fleet.RolloutControl{}
	}
	rs.ctls[c.Rollout] = c
}

// policy is the rollout the step describes, its first wave opening Start
// after now.
func (r *RolloutStep) policy(now time.Time) (*fleet.Rollout, error) {
	ro := &fleet.Rollout{ID: r.ID, Waves: r.Waves, Start: now.Add(time.Duration(r.Start)).UTC(), Interval: fleet.Duration(r.Interval),
		Disruptive: r.Disruptive || len(r.Windows) > 0, DeferMax: fleet.Duration(r.DeferMax)}
	if len(ro.Waves) == 0 {
		ro.Waves = []float64{1}
	}
	for i, s := range r.Windows {
		w, err := window.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("windows[%d]: %w", i, err)
		}
		ro.Windows = append(ro.Windows, w)
	}
	if r.Abort != nil {
		ro.Abort = &fleet.AbortRule{FailedPercent: r.Abort.FailedPercent, MinFinished: r.Abort.MinFinished}
	}
	return ro, ro.Check()
}

// rollout carries out a rollout step: the running control, then the
// release or push with the policy in it, unsigned, as tern rollout start
// publishes them.
func (pl *player) rollout(ctx context.Context, r *RolloutStep) error {
	ro, err := r.policy(pl.now())
	if err != nil {
		return fmt.Errorf("rollout %s: %w", r.ID, err)
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var what, scope string
	var publish func() error
	if r.Module != "" {
		b, err := pl.sc.code(r.ModuleSource)
		if err != nil {
			return fmt.Errorf("rollout %s: %w", r.ID, err)
		}
		v := pl.pushed.release(r.Module, r.Version)
		env := fleet.NewRelease(r.Module, v, b)
		env.Rollout = ro
		what, scope = fmt.Sprintf("module %s version %d", r.Module, v), fleet.ModuleScope(r.Module)
		publish = func() error { return pl.op.PushRelease(pctx, env) }
	} else {
		doc, err := json.Marshal(r.Target)
		if err != nil {
			return fmt.Errorf("rollout %s: target: %w", r.ID, err)
		}
		scope = fleet.DeviceScope(r.Device)
		if r.Group != "" {
			scope = fleet.GroupScope(r.Group)
		}
		v := pl.pushed.push(scope, r.Version)
		env := fleet.TargetEnvelope{Format: fleet.Format, Version: v, Target: doc, Issued: pl.now().UTC(), Rollout: ro}
		what = fmt.Sprintf("target %s version %d", scope, v)
		publish = func() error {
			if r.Group != "" {
				return pl.op.PushGroupTarget(pctx, r.Group, env)
			}
			return pl.op.PushTarget(pctx, r.Device, env)
		}
	}
	c := fleet.RolloutControl{Format: fleet.Format, Rollout: ro.ID, Version: 1, State: fleet.RolloutRunning, Reason: "started",
		What: what, Scope: scope, Policy: ro, Issued: pl.now().UTC()}
	if err := pl.op.PublishRolloutControl(pctx, c); err != nil {
		return fmt.Errorf("rollout %s: %w", r.ID, err)
	}
	pl.rollouts.put(c)
	var waves []string
	for i, w := range ro.Waves {
		waves = append(waves, fmt.Sprintf("%g%% at %s", w*100, ro.Opens(i).Format("15:04:05")))
	}
	pl.log.note("", "rollout", fmt.Sprintf("%s: %s, waves %s", ro.ID, what, strings.Join(waves, ", ")))
	if err := publish(); err != nil {
		return fmt.Errorf("rollout %s: %w", r.ID, err)
	}
	return nil
}

// rolloutControl publishes the rollout's next control.
func (pl *player) rolloutControl(ctx context.Context, key string, st *RolloutCtlStep, state fleet.RolloutState) error {
	c, ok := pl.rollouts.get(st.ID)
	if !ok {
		return fmt.Errorf("%s: no rollout %s was started before", key, st.ID)
	}
	c.Version++
	c.State, c.Reason, c.Issued = state, st.Reason, pl.now().UTC()
	if c.Reason == "" {
		c.Reason = key
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := pl.op.PublishRolloutControl(pctx, c); err != nil {
		return fmt.Errorf("%s %s: %w", key, st.ID, err)
	}
	pl.rollouts.put(c)
	pl.log.note("", key, fmt.Sprintf("%s: %s", st.ID, c.Reason))
	return nil
}

// counts counts rollout c from what the agents last reported.
func (pl *player) counts(c fleet.RolloutControl) fleet.RolloutCounts {
	var ds []fleet.RolloutDevice
	for _, id := range pl.agents.selected(Selector{All: true}) {
		s := pl.obs.snapshot(id)
		if !s.hasState {
			continue
		}
		if d, ok := c.DeviceOf(s.state); ok {
			ds = append(ds, d)
		}
	}
	return c.Count(ds)
}

// watch follows rollout id until ctx is done, as tern rollout watch
// does: it notes each change of the counts and, with autoAbort, aborts
// the rollout when its abort rule trips.
func (pl *player) watch(ctx context.Context, st *RolloutCtlStep) {
	last := ""
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		c, ok := pl.rollouts.get(st.ID)
		if !ok {
			continue
		}
		rc := pl.counts(c)
		var waves []string
		for i, m := range rc.Waves {
			waves = append(waves, fmt.Sprintf("wave %d: %s", i+1, countsLine(m)))
		}
		if line := strings.Join(waves, "; "); line != last {
			last = line
			pl.log.note("", "rollout_watch", st.ID+": "+line)
		}
		if st.AutoAbort && c.State != fleet.RolloutAborted && c.Trips(rc) {
			ok, failed := rc.Finished()
			stop := &RolloutCtlStep{ID: st.ID, Reason: fmt.Sprintf("auto-abort: %s (%d failed of %d finished)", c.Policy.Abort, failed, ok+failed)}
			if err := pl.rolloutControl(ctx, "rollout_abort", stop, fleet.RolloutAborted); err != nil {
				pl.log.record(AssertionResult{Name: "rollout_watch " + st.ID, Reason: err.Error(), At: pl.log.since()})
			}
		}
	}
}

var phaseOrder = []api.RolloutPhase{api.RolloutSucceeded, api.RolloutFailed, api.RolloutApplying, api.RolloutDeferred, api.RolloutWaiting, api.RolloutHalted, api.RolloutAborted, api.RolloutReplaced, fleet.RolloutUnreported}

func countsLine(m map[api.RolloutPhase]int) string {
	var parts []string
	for _, p := range phaseOrder {
		if n := m[p]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, p))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// rolloutIs checks a rollout assertion against what the agents last
// reported.
func (j *judge) rolloutIs(c *RolloutCheck, rs *rollouts) (bool, string) {
	ctl, ok := rs.get(c.ID)
	if !ok {
		return false, "no rollout " + c.ID + " was started"
	}
	var bad []string
	n := 0
	var slowest time.Duration
	for _, id := range j.agents.selected(c.Selector) {
		if c.Wave != 0 && ctl.Policy.Wave(id)+1 != c.Wave {
			continue
		}
		n++
		s := j.obs.snapshot(id)
		if !s.hasState {
			bad = append(bad, id+": no state reported")
			continue
		}
		st, reported := s.state.Rollouts[c.ID]
		switch {
		case c.Phase != "" && (!reported || string(st.Phase) != c.Phase):
			got := "unreported"
			if reported {
				got = fmt.Sprintf("%s (%s)", st.Phase, st.Why)
			}
			bad = append(bad, fmt.Sprintf("%s: %s", id, got))
			continue
		case c.Module != "" && s.state.Modules[c.Module] != c.ModuleVersion:
			bad = append(bad, fmt.Sprintf("%s: runs %s %s", id, c.Module, s.state.Modules[c.Module]))
			continue
		}
		if c.AppliedWithin == 0 {
			continue
		}
		d, err := appliedInTime(j.agents, id, c, st)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", id, err))
		}
		slowest = max(slowest, d)
	}
	what := fmt.Sprintf("%d devices", n)
	if c.Wave != 0 {
		what += fmt.Sprintf(" of wave %d", c.Wave)
	}
	if n == 0 {
		return false, "no selected device is in the wave"
	}
	if len(bad) > 0 {
		return false, fmt.Sprintf("%d of %s: %s", len(bad), what, list(bad, 3))
	}
	if c.AppliedWithin != 0 {
		what += fmt.Sprintf(", each applied at most %v after both its window and its busy sensor allowed it", slowest.Round(time.Millisecond))
	}
	return true, what
}

// appliedInTime checks that the device let the change through after both
// its window opened (AppliedAfter) and its last press ended, and within
// AppliedWithin of the later.
func appliedInTime(agents *roster, id string, c *RolloutCheck, st api.RolloutStatus) (time.Duration, error) {
	if st.Applied.IsZero() {
		return 0, errors.New("has not applied it")
	}
	allowed, _ := time.Parse(time.RFC3339, c.AppliedAfter)
	why := "the window opened"
	if b, err := agents.boards(Selector{Device: id}, "applied_within"); err == nil && len(b) == 1 {
		if r := b[0].Released(); r.After(allowed) {
			allowed, why = r, "its busy button was let go"
		}
	}
	d := st.Applied.Sub(allowed)
	if d < 0 || d > time.Duration(c.AppliedWithin) {
		return d, fmt.Errorf("applied at %s, %v after %s (%s): want 0 to %v", st.Applied.Format("15:04:05.000"), d.Round(time.Millisecond), why, allowed.Format("15:04:05.000"), c.AppliedWithin)
	}
	return d, nil
}
