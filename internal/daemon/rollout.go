package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/runtime/api"
	"github.com/tern-iot/tern/runtime/store"
	"github.com/tern-iot/tern/runtime/window"
)

// UpdatePolicy is the device's policy for disruptive changes
// (ternd.yaml update_policy; docs/rollouts.md): a change a rollout marks
// disruptive waits for one of Windows (none: any time) and, while a
// module's busy sensor says the device is busy, up to DeferMax.
type UpdatePolicy struct {
	Windows []window.Spec `yaml:"windows" json:"windows"`
	// DeferMax bounds how long a busy device defers a disruptive change,
	// e.g. "2h". Default 1h.
	DeferMax string `yaml:"defer_max" json:"defer_max"`
}

// DefaultDeferMax is update_policy.defer_max's default.
const DefaultDeferMax = time.Hour

// parse checks the policy.
func (p UpdatePolicy) parse() ([]window.Window, time.Duration, error) {
	var errs []error
	var ws []window.Window
	if len(p.Windows) > fleet.MaxWindows {
		errs = append(errs, fmt.Errorf("update_policy.windows: %d windows, over the limit of %d", len(p.Windows), fleet.MaxWindows))
	}
	for i, s := range p.Windows {
		w, err := window.Parse(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("update_policy.windows[%d]: %w", i, err))
			continue
		}
		ws = append(ws, w)
	}
	d := DefaultDeferMax
	if p.DeferMax != "" {
		v, err := time.ParseDuration(p.DeferMax)
		if err != nil || v < 0 {
			errs = append(errs, fmt.Errorf("update_policy.defer_max: %q: want a duration such as 30m or 2h", p.DeferMax))
		}
		d = v
	}
	return ws, d, errors.Join(errs...)
}

// gate holds the changes rollouts govern until each device's rollout
// policy lets them through: its wave open by its clock, the rollout's
// control heard on the current connection and running, and, for a
// disruptive change, a maintenance window open and no busy sensor set (up
// to the defer bound). It runs on feed's goroutine: no locks.
type gate struct {
	device  string
	trust   signing.Trust
	store   store.Store
	log     *slog.Logger
	clock   func() time.Time
	synced  func() bool
	conn    func() (uint64, bool)
	busy    func() string
	report  func(map[string]api.RolloutStatus)
	windows []window.Window
	defMax  time.Duration

	controls map[string]heldControl
	items    map[string]*gated // by key: "target/<scope>", "module/<name>"
	status   map[string]api.RolloutStatus
	changed  bool
}

// heldControl is what the device knows of a rollout's control. Version
// and State are stored, so a replayed older control is refused after a
// restart; Conn is the connection it was last heard on.
type heldControl struct {
	Version uint64             `json:"version"`
	State   fleet.RolloutState `json:"state"`
	Reason  string             `json:"reason,omitempty"`
	Seen    time.Time          `json:"seen"`
	Conn    uint64             `json:"-"`
}

// gated is one change held by the gate.
type gated struct {
	key     string
	version uint64 // of a release: the whole release it fetches comes back with it
	rollout fleet.Rollout
	what    string
	// apply hands the change on; check, once applied, says how it went
	// ("" while not known) and whether to stop looking.
	apply   func() error
	check   func() (p api.RolloutPhase, why string, done bool)
	applied bool
	// busySince is when a busy sensor first held the change back.
	busySince time.Time
}

var (
	keyControls = []byte("rollout/controls")
	keyStatus   = []byte("rollout/status")
)

// maxControls bounds the rollouts whose control versions are stored.
const maxControls = 1024

// busyPoll is how often a change held by a busy sensor looks again: the
// change applies within it of the sensor clearing (sensors run about as
// often).
const busyPoll = 200 * time.Millisecond

// clockJump is how often a gate holding a change looks at the clock even
// when nothing is due: the time of a wave or a window is on the wall
// clock, which can jump, and the gate's timer runs on the monotonic one.
const clockJump = 500 * time.Millisecond

// monitorPoll is how often an applied change's outcome is looked at.
const monitorPoll = 500 * time.Millisecond

func newGate(g gate) (*gate, error) {
	g.controls, g.items, g.status = map[string]heldControl{}, map[string]*gated{}, map[string]api.RolloutStatus{}
	for key, v := range map[string]any{string(keyControls): &g.controls, string(keyStatus): &g.status} {
		b, err := g.store.Get([]byte(key))
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, fmt.Errorf("ternd: reading %s: %w", key, err)
		default:
			if err := json.Unmarshal(b, v); err != nil {
				g.log.Warn("stored rollout records are corrupt; starting without them", "key", key, "err", err)
			}
		}
	}
	if g.status == nil {
		g.status = map[string]api.RolloutStatus{}
	}
	if g.controls == nil {
		g.controls = map[string]heldControl{}
	}
	// A change applying when ternd stopped comes again with its retained
	// message, and is looked at again then.
	for id, st := range g.status {
		if st.Phase == api.RolloutApplying || st.Phase == api.RolloutWaiting || st.Phase == api.RolloutDeferred || st.Phase == api.RolloutHalted {
			st.Phase, st.Why = api.RolloutWaiting, "ternd restarted: waiting for the change and the rollout's control from the broker"
			g.status[id] = st
		}
	}
	g.changed = true
	return &g, nil
}

// control takes a rollout control from the fleet.
func (g *gate) control(c fleet.ReceivedControl) {
	if len(g.trust) > 0 {
		if err := c.Verify(g.trust); err != nil {
			g.log.Warn("rollout control refused", "rollout", c.Rollout, "version", c.Version, "err", err)
			return
		}
	}
	held, ok := g.controls[c.Rollout]
	switch {
	case ok && c.Version < held.Version:
		g.log.Warn("rollout control refused: older than the one held (a replay?)", "rollout", c.Rollout, "version", c.Version, "held", held.Version)
		return
	case ok && held.State == fleet.RolloutAborted && c.State != fleet.RolloutAborted:
		g.log.Warn("rollout control refused: the rollout was aborted; start a new rollout", "rollout", c.Rollout, "version", c.Version)
		held.Conn = c.Conn
		g.controls[c.Rollout] = held
		return
	}
	fresh := !ok || c.Version != held.Version
	g.controls[c.Rollout] = heldControl{Version: c.Version, State: c.State, Reason: c.Reason, Seen: g.clock(), Conn: c.Conn}
	if fresh {
		g.log.Info("rollout control", "rollout", c.Rollout, "version", c.Version, "state", c.State, "reason", c.Reason)
		g.saveControls()
	}
}

func (g *gate) saveControls() {
	for len(g.controls) > maxControls {
		oldest := ""
		for id, c := range g.controls {
			if oldest == "" || c.Seen.Before(g.controls[oldest].Seen) {
				oldest = id
			}
		}
		delete(g.controls, oldest)
	}
	b, _ := json.Marshal(g.controls)
	if err := g.store.Put(keyControls, b); err != nil {
		g.log.Warn("rollout controls not stored", "err", err)
	}
}

// hold takes a change a rollout governs. A change already held for the
// same key is replaced.
func (g *gate) hold(it *gated) {
	if old, ok := g.items[it.key]; ok && old.rollout.ID != it.rollout.ID && !old.applied {
		g.set(old.rollout.ID, old, api.RolloutReplaced, "replaced by "+it.what)
	}
	g.items[it.key] = it
	if !it.applied {
		g.set(it.rollout.ID, it, api.RolloutWaiting, "received")
	}
}

// supersede drops the change held for key, if it was not let through: a
// change for the same target or module without a rollout came after it.
func (g *gate) supersede(key, by string) {
	if old, ok := g.items[key]; ok && !old.applied {
		g.set(old.rollout.ID, old, api.RolloutReplaced, "replaced by "+by)
		delete(g.items, key)
	}
}

// set records a rollout's phase for the status.
func (g *gate) set(id string, it *gated, p api.RolloutPhase, why string) {
	old, ok := g.status[id]
	if ok && old.Phase == p && old.Why == why {
		return
	}
	st := api.RolloutStatus{Wave: it.rollout.Wave(g.device) + 1, Phase: p, What: it.what, Why: clipText(why, 512), Since: g.clock().UTC()}
	if ok && old.Phase == p {
		st.Since = old.Since // the phase is as old as it was; only the why moved
	}
	switch {
	case p == api.RolloutApplying:
		st.Applied = st.Since
	case ok && old.What == st.What:
		st.Applied = old.Applied
	}
	g.status[id] = st
	for len(g.status) > api.MaxRollouts {
		oldest := ""
		for k, s := range g.status {
			if oldest == "" || s.Since.Before(g.status[oldest].Since) {
				oldest = k
			}
		}
		delete(g.status, oldest)
	}
	g.changed = true
}

// step lets through what may go now, looks at the outcome of what went,
// reports, and returns when to look again (zero: when something arrives).
func (g *gate) step() time.Time {
	now := g.clock()
	gen, up := g.conn()
	var next time.Time
	soon := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if len(g.items) > 0 {
		// The wall clock can jump (an NTP step, a testbench's clock):
		// while a change waits, look again at least this often.
		soon(now.Add(clockJump))
	}
	keys := slices.Sorted(maps.Keys(g.items))
	for _, k := range keys {
		it := g.items[k]
		id := it.rollout.ID
		if it.applied {
			g.monitor(it, soon)
			continue
		}
		c, heard := g.controls[id]
		switch {
		case heard && c.State == fleet.RolloutAborted:
			g.set(id, it, api.RolloutAborted, "the rollout was aborted: "+orNone(c.Reason))
			delete(g.items, k)
			continue
		case !up:
			g.set(id, it, api.RolloutWaiting, "offline: a rollout's change waits for the broker, where a halt would be heard")
			continue
		case !heard || c.Conn != gen:
			g.set(id, it, api.RolloutWaiting, fmt.Sprintf("the control of rollout %s has not been heard since the device connected (tern rollout start publishes it)", id))
			continue
		case c.State == fleet.RolloutPaused:
			g.set(id, it, api.RolloutHalted, "the rollout is paused: "+orNone(c.Reason))
			continue
		}
		wave := it.rollout.Wave(g.device)
		if opens := it.rollout.Opens(wave); now.Before(opens) {
			g.set(id, it, api.RolloutWaiting, fmt.Sprintf("wave %d of %d opens at %s", wave+1, len(it.rollout.Waves), opens.UTC().Format(time.RFC3339)))
			soon(opens)
			continue
		}
		if g.synced != nil && !g.synced() {
			g.set(id, it, api.RolloutWaiting, "the clock is not synchronised (NTP), and waves open by the clock")
			soon(now.Add(time.Second))
			continue
		}
		note := ""
		if it.rollout.Disruptive {
			ws := g.windows
			if len(it.rollout.Windows) > 0 {
				ws = it.rollout.Windows
			}
			if open, edge := inWindow(ws, now); !open {
				why := "outside the maintenance windows (" + describeWindows(ws) + ")"
				if !edge.IsZero() {
					why += "; the next opens at " + edge.UTC().Format(time.RFC3339)
					soon(edge)
				}
				g.set(id, it, api.RolloutDeferred, why)
				it.busySince = time.Time{}
				continue
			} else if !edge.IsZero() {
				soon(edge)
			}
			if why := g.busy(); why != "" {
				bound := g.defMax
				if d := time.Duration(it.rollout.DeferMax); d > 0 {
					bound = d
				}
				if it.busySince.IsZero() {
					it.busySince = now
				}
				if now.Sub(it.busySince) < bound {
					g.set(id, it, api.RolloutDeferred, fmt.Sprintf("busy: %s (deferred since %s, at most %v)", why, it.busySince.UTC().Format(time.RFC3339), bound))
					soon(now.Add(busyPoll))
					continue
				}
				note = fmt.Sprintf("; applied while busy (%s): deferred for %v, the bound", why, bound)
			}
		}
		it.applied = true
		g.set(id, it, api.RolloutApplying, fmt.Sprintf("wave %d opened%s", wave+1, note))
		if err := it.apply(); err != nil {
			g.set(id, it, api.RolloutFailed, err.Error())
			delete(g.items, k)
			continue
		}
		g.monitor(it, soon)
	}
	if g.changed {
		g.changed = false
		b, _ := json.Marshal(g.status)
		if err := g.store.Put(keyStatus, b); err != nil {
			g.log.Warn("rollout statuses not stored", "err", err)
		}
		g.report(g.status)
	}
	return next
}

// reports reports whether the status holds rollout id, not yet finished:
// a restarted ternd looks at the outcome of what it let through before.
func (g *gate) reports(id string) bool {
	st, ok := g.status[id]
	return ok && !st.Phase.Finished()
}

// fetched reports whether env is the whole release the gate let through
// as a manifest and asked to fetch: it goes on to be installed.
func (g *gate) fetched(env fleet.ReleaseEnvelope) bool {
	it, ok := g.items["module/"+env.Module]
	return ok && it.applied && it.version == env.Version && env.Wasm != nil
}

// monitor looks at how an applied change went.
func (g *gate) monitor(it *gated, soon func(time.Time)) {
	p, why, done := it.check()
	if p != "" {
		g.set(it.rollout.ID, it, p, why)
	}
	if done {
		if g.items[it.key] == it {
			delete(g.items, it.key)
		}
		return
	}
	soon(g.clock().Add(monitorPoll))
}

// inWindow reports whether one of ws is open at t (always, with none),
// and the next instant that may change.
func inWindow(ws []window.Window, t time.Time) (open bool, next time.Time) {
	if len(ws) == 0 {
		return true, time.Time{}
	}
	for _, w := range ws {
		open = open || w.Open(t)
		if e := w.Next(t); !e.IsZero() && (next.IsZero() || e.Before(next)) {
			next = e
		}
	}
	return open, next
}

func describeWindows(ws []window.Window) string {
	s := make([]string, len(ws))
	for i, w := range ws {
		s[i] = w.String()
	}
	return strings.Join(s, ", ")
}

func orNone(s string) string {
	if s == "" {
		return "no reason given"
	}
	return s
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// probation is how long the gate watches a change it let through: a
// module release rolled back in that time, or a target that fails and
// then converges, changes the rollout's outcome on the device.
const probation = 10 * time.Minute

// targetGated holds a target envelope: apply offers it as any target; it
// succeeded once the agent converged on it (or a later version), failed
// while the agent's attempts at it fail.
func targetGated(env fleet.ScopedTarget, a *runtime.Agent, apply func(fleet.ScopedTarget) error) *gated {
	it := &gated{key: "target/" + env.Scope, rollout: *env.Rollout, what: fmt.Sprintf("target %s version %d", env.Scope, env.Version)}
	var version uint64
	var since time.Time
	it.apply = func() error {
		if err := apply(env); err != nil {
			return err
		}
		_, version = a.Target()
		since = time.Now()
		return nil
	}
	it.check = func() (api.RolloutPhase, string, bool) {
		st := a.Status()
		switch {
		case st.TargetVersion > version:
			return api.RolloutSucceeded, fmt.Sprintf("a later target (version %d) replaced it", st.TargetVersion), true
		case st.Converged:
			return api.RolloutSucceeded, "converged", true
		case st.Phase == api.PhaseFailed:
			return api.RolloutFailed, st.Error, time.Since(since) > probation
		}
		return "", "", time.Since(since) > probation
	}
	return it
}

// releaseGated holds a module release: apply sends it to be installed; it
// succeeded once installed, and failed if refused or rolled back within
// the probation.
func releaseGated(env fleet.ReleaseEnvelope, a *runtime.Agent, out *outcomes, send func(fleet.ReleaseEnvelope) bool, fetch func(fleet.ReleaseEnvelope)) *gated {
	it := &gated{key: "module/" + env.Module, version: env.Version, rollout: *env.Rollout, what: fmt.Sprintf("module %s version %d", env.Module, env.Version)}
	if env.ModuleVersion != "" {
		it.what += " (" + env.ModuleVersion + ")"
	}
	var since time.Time
	it.apply = func() error {
		if env.Wasm == nil {
			fetch(env) // the whole release comes back to feed, which installs it (gate.fetched)
			return nil
		}
		if !send(env) {
			return errors.New("ternd is stopping")
		}
		return nil
	}
	it.check = func() (api.RolloutPhase, string, bool) {
		if since.IsZero() {
			err, ok := out.take(env.Module, env.Version)
			switch {
			case !ok:
				return "", "", false
			case err != nil:
				return api.RolloutFailed, err.Error(), true
			}
			since = time.Now()
		}
		if a.RunningCode(env.Module) != env.SHA256 {
			return api.RolloutFailed, fmt.Sprintf("installed, then rolled back to version %s", orNone(a.Status().Modules[env.Module])), true
		}
		return api.RolloutSucceeded, "installed", time.Since(since) > probation
	}
	return it
}

// outcomes carries the outcome of installing releases from the goroutine
// that installs them to the gate, without blocking either.
type outcomes struct {
	mu   sync.Mutex
	errs map[string]error // by module and version
	wake chan struct{}
}

func newOutcomes() *outcomes {
	return &outcomes{errs: map[string]error{}, wake: make(chan struct{}, 1)}
}

func (o *outcomes) put(module string, version uint64, err error) {
	o.mu.Lock()
	o.errs[fmt.Sprintf("%s %d", module, version)] = err
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func (o *outcomes) take(module string, version uint64) (error, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	k := fmt.Sprintf("%s %d", module, version)
	err, ok := o.errs[k]
	delete(o.errs, k)
	return err, ok
}

// agentGated holds an agent release: apply tries it (ternd restarts into
// the new binary); its outcome is the update's, after the restart
// (update.State: committed, rolled back, or refused before the swap).
func agentGated(r fleet.AgentRelease, up *updater, apply func() error) *gated {
	it := &gated{key: "agent/" + r.Arch, version: r.Version, rollout: *r.Rollout, what: fmt.Sprintf("ternd %s for %s (release %d)", orUnknown(r.AgentVersion), r.Arch, r.Version)}
	it.apply = apply
	it.check = func() (api.RolloutPhase, string, bool) { return up.outcome(r.Version) }
	return it
}

// agentOutcome is what a restarted ternd says of the agent release its
// rollout let through before the restart: it arrives again (retained),
// is tried already, and only its outcome is to be looked at.
func agentOutcome(r fleet.AgentRelease, up *updater) *gated {
	it := agentGated(r, up, nil)
	it.applied = true
	return it
}
