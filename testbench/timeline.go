package testbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/hal/sim"
)

// player plays a scenario's timeline on the agents: the operator's
// pushes and releases, the world's button presses and GPS moves, faults,
// restarts and kills. Its judge checks the expect steps and, after the
// timeline, the assertions.
type player struct {
	sc     *Scenario
	seed   uint64     // the kill plans draw from it
	rng    *rand.Rand // the noise faults draw from it
	broker broker
	op     *fleet.Operator
	obs    *observer
	agents *roster
	pushed *pushed
	judge  *judge
	log    *narrator

	power map[string]*sync.Mutex // agent → held while it is killed or restarted
	kills sync.WaitGroup         // kill steps under way

	clock    time.Duration              // the scenario's wall clock: the real time plus this
	jobs     map[string]fleet.ScopedJob // jobs submitted, by id: scope and latest envelope
	rollouts *rollouts                  // rollouts started, shared with the judge
}

// now is the time on the scenario's wall clock.
func (pl *player) now() time.Time { return time.Now().Add(pl.clock) }

// setClock moves the scenario's wall clock, and every board's, by d.
func (pl *player) setClock(d time.Duration) error {
	bs, err := pl.agents.boards(Selector{All: true}, "a scenario clock")
	if err != nil {
		return err
	}
	pl.clock += d
	for _, b := range bs {
		b.Clock.Jump(d)
	}
	return nil
}

// pushed is what the operator pushed: the player numbers the pushes and
// releases, the judge reads which target each device should converge on.
type pushed struct {
	groups map[string][]string // device → its groups

	mu       sync.Mutex
	versions map[string]uint64 // "device/ID" or "group/G" → latest version pushed
	releases map[string]uint64 // module → latest release version
}

// play runs the timeline, then the assertions.
func (pl *player) play(ctx context.Context) {
	liveCtx, stopLive := context.WithCancel(ctx)
	var liveDone sync.WaitGroup
	liveDone.Go(func() { pl.log.live(liveCtx, pl.judge.convergedNow) })
	defer func() { stopLive(); liveDone.Wait() }()

	if pl.sc.Clock != "" {
		at, _ := jobTime(pl.sc.Clock) // checked when the scenario was read
		if err := pl.setClock(time.Until(at)); err != nil {
			pl.log.record(AssertionResult{Name: "clock", Reason: err.Error(), At: pl.log.since()})
			return
		}
		pl.log.note("", "clock", "the boards' clocks read "+pl.sc.Clock)
	}
	faultCtx, stopFaults := context.WithCancel(ctx)
	defer stopFaults()
	defer pl.kills.Wait() // before the agents are stopped
	var checks, restores sync.WaitGroup
	steps := slices.Clone(pl.sc.Timeline)
	sort.SliceStable(steps, func(i, j int) bool { return steps[i].At < steps[j].At })
	for _, st := range steps {
		if !sleepUntil(ctx, pl.log.start.Add(time.Duration(st.At))) {
			return
		}
		if st.Expect != nil {
			checks.Go(func() { pl.log.record(pl.judge.check(ctx, st.Expect)) })
			continue
		}
		if st.Await != nil {
			pl.log.record(pl.judge.check(ctx, st.Await))
			continue
		}
		if err := pl.do(ctx, faultCtx, &restores, st); err != nil {
			pl.log.record(AssertionResult{Name: "timeline step at " + st.At.String(), Line: st.line, Reason: err.Error(), At: pl.log.since()})
			pl.log.note("", "step failed", err.Error())
		}
	}
	// The timeline is done when the last kill is: the assertions measure
	// from after it.
	pl.kills.Wait()
	// nothing_lost is checked last: once the other checks are done, the
	// events they waited for have arrived too.
	for i := range pl.sc.Assertions {
		if pl.sc.Assertions[i].NothingLost == nil {
			checks.Go(func() { pl.log.record(pl.judge.check(ctx, &pl.sc.Assertions[i])) })
		}
	}
	checks.Wait()
	for i := range pl.sc.Assertions {
		if pl.sc.Assertions[i].NothingLost != nil {
			checks.Go(func() { pl.log.record(pl.judge.check(ctx, &pl.sc.Assertions[i])) })
		}
	}
	checks.Wait()
	stopFaults()
	restores.Wait()
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// do carries out one step. Faults with a duration are undone by a
// goroutine in restores.
func (pl *player) do(ctx, faultCtx context.Context, restores *sync.WaitGroup, st Step) error {
	after := func(d Duration, what, who string, undo func()) {
		if d == 0 {
			return
		}
		restores.Go(func() {
			select {
			case <-time.After(time.Duration(d)):
				undo()
				pl.log.note(who, what+" ends", "")
			case <-faultCtx.Done():
				undo()
			}
		})
	}
	switch {
	case st.Push != nil:
		p := st.Push
		scope, who := fleet.DeviceScope(p.Device), "device "+p.Device
		if p.Group != "" {
			scope, who = fleet.GroupScope(p.Group), "group "+p.Group
		}
		doc, err := json.Marshal(p.Target)
		if err != nil {
			return fmt.Errorf("push: target: %w", err)
		}
		v := pl.pushed.push(scope, p.Version)
		env := fleet.TargetEnvelope{Format: fleet.Format, Version: v, Target: doc, Issued: time.Now().UTC()}
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		pl.log.note("", "push", fmt.Sprintf("%s v%d %s", who, v, doc))
		if p.Group != "" {
			err = pl.op.PushGroupTarget(pctx, p.Group, env)
		} else {
			err = pl.op.PushTarget(pctx, p.Device, env)
		}
		if err != nil {
			return fmt.Errorf("push to %s: %w", who, err)
		}
	case st.Release != nil:
		rel := st.Release
		b, err := pl.sc.code(rel.ModuleSource)
		if err != nil {
			return fmt.Errorf("release %s: %w", rel.Module, err)
		}
		v := pl.pushed.release(rel.Module, rel.Version)
		src := rel.Plugin + rel.Build + rel.Wasm
		pl.log.note("", "release", fmt.Sprintf("%s v%d from %s (%d KiB)", rel.Module, v, src, len(b)>>10))
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := pl.op.PushRelease(pctx, fleet.NewRelease(rel.Module, v, b)); err != nil {
			return fmt.Errorf("release %s: %w", rel.Module, err)
		}
	case st.Restart != nil:
		for _, id := range pl.agents.selected(*st.Restart) {
			if err := pl.powerCycle(ctx, id, 0, "restart"); err != nil {
				return err
			}
		}
	case st.Kill != nil:
		pl.kill(ctx, st)
	case st.Press != nil:
		bs, err := pl.agents.boards(st.Press.Selector, "press")
		if err != nil {
			return err
		}
		d := time.Duration(st.Press.For)
		if d == 0 {
			d = 200 * time.Millisecond
		}
		pl.log.note("", "press", fmt.Sprintf("%s %s for %v", st.Press.Selector, st.Press.Line, d))
		for _, b := range bs {
			if err := b.Press(st.Press.Line, d); err != nil {
				return fmt.Errorf("press: %w", err)
			}
		}
	case st.MoveGPS != nil:
		g := st.MoveGPS
		bs, err := pl.agents.boards(g.Selector, "move_gps")
		if err != nil {
			return err
		}
		pl.log.note("", "move_gps", fmt.Sprintf("%s to %.4f, %.4f", g.Selector, g.Lat, g.Lon))
		for _, b := range bs {
			gps, err := b.GPS(g.Port)
			if err != nil {
				return fmt.Errorf("move_gps: %w", err)
			}
			gps.Move(g.Lat, g.Lon)
		}
	case st.Fault != nil:
		return pl.fault(st.Fault, after)
	case st.AdvanceClock != nil:
		d := time.Duration(*st.AdvanceClock)
		if err := pl.setClock(d); err != nil {
			return fmt.Errorf("advance_clock: %w", err)
		}
		pl.log.note("", "advance_clock", fmt.Sprintf("by %v, to %s", d, pl.now().UTC().Format(time.RFC3339)))
	case st.Job != nil, st.JobEdit != nil, st.JobCancel != nil:
		return pl.job(ctx, st)
	case st.Rollout != nil:
		return pl.rollout(ctx, st.Rollout)
	case st.RolloutWatch != nil:
		if _, ok := pl.rollouts.get(st.RolloutWatch.ID); !ok {
			return fmt.Errorf("rollout_watch: no rollout %s was started before", st.RolloutWatch.ID)
		}
		restores.Go(func() { pl.watch(faultCtx, st.RolloutWatch) })
	case st.RolloutPause != nil:
		return pl.rolloutControl(ctx, "rollout_pause", st.RolloutPause, fleet.RolloutPaused)
	case st.RolloutResume != nil:
		return pl.rolloutControl(ctx, "rollout_resume", st.RolloutResume, fleet.RolloutRunning)
	case st.RolloutAbort != nil:
		return pl.rolloutControl(ctx, "rollout_abort", st.RolloutAbort, fleet.RolloutAborted)
	}
	return nil
}

// job carries out a job, job_edit or job_cancel step: the envelope
// tern job submit, edit or cancel would publish, unsigned.
func (pl *player) job(ctx context.Context, st Step) error {
	j, kind := st.Job, "job"
	if st.JobEdit != nil {
		j, kind = st.JobEdit, "job_edit"
	} else if st.JobCancel != nil {
		j, kind = st.JobCancel, "job_cancel"
	}
	held, ok := pl.jobs[j.ID]
	switch {
	case kind == "job" && ok:
		return fmt.Errorf("job %s: submitted already; use job_edit", j.ID)
	case kind != "job" && !ok:
		return fmt.Errorf("%s %s: no job %s was submitted before", kind, j.ID, j.ID)
	case kind == "job":
		held.Scope = fleet.DeviceScope(j.Device)
		if j.Group != "" {
			held.Scope = fleet.GroupScope(j.Group)
		}
		held.JobEnvelope = fleet.JobEnvelope{Format: fleet.Format, ID: j.ID, Module: j.Module, Job: j.Command}
	}
	env := held.JobEnvelope
	env.Version++
	env.Issued = pl.now().UTC()
	if kind == "job_cancel" {
		env.Canceled = true
	} else {
		if j.Module != "" {
			env.Module = j.Module
		}
		if j.Command != "" {
			env.Job = j.Command
		}
		if j.Args != nil {
			b, err := json.Marshal(j.Args)
			if err != nil {
				return fmt.Errorf("%s %s: args: %w", kind, j.ID, err)
			}
			env.Args = b
		}
		if j.At != "" {
			env.NotBefore, _ = jobTime(j.At) // checked when the scenario was read
		}
		if j.Deadline != "" {
			env.Deadline, _ = jobTime(j.Deadline)
		}
		if j.Cron != "" {
			env.Cron, env.TZ = j.Cron, j.TZ
		}
		if j.After != nil {
			env.After = nil
			for _, a := range j.After {
				id, when, _ := strings.Cut(a, ":")
				env.After = append(env.After, fleet.JobDep{Job: id, When: when})
			}
		}
		if j.Attempts != 0 {
			env.Attempts = j.Attempts
		}
		env.RetryInterrupted = env.RetryInterrupted || j.RetryInterrupted
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	pl.log.note("", kind, fmt.Sprintf("%s v%d for %s: %s.%s", env.ID, env.Version, held.Scope, env.Module, env.Job))
	if err := pl.op.SubmitJob(pctx, held.Scope, env); err != nil {
		return fmt.Errorf("%s %s: %w", kind, j.ID, err)
	}
	held.JobEnvelope = env
	pl.jobs[j.ID] = held
	return nil
}

func (pl *player) fault(f *FaultStep, after func(Duration, string, string, func())) error {
	detail := f.Selector.String()
	switch f.Kind {
	case "broker_down":
		detail = ""
	case "node_down":
		detail = fmt.Sprintf("node %d", f.Node)
	}
	if f.Chip != "" {
		detail += " chip " + f.Chip
	}
	if f.Port != "" {
		detail += " port " + f.Port
	}
	if f.By != 0 {
		detail += " by " + f.By.String()
	}
	if f.For != 0 {
		detail += " for " + f.For.String()
	}
	pl.log.note("", "fault "+f.Kind, strings.TrimSpace(detail))
	if f.Kind == "broker_down" {
		if err := pl.broker.Stop(); err != nil {
			return fmt.Errorf("broker_down: %w", err)
		}
		after(f.For, "broker_down", "", func() {
			if err := pl.broker.Start(); err != nil {
				pl.log.record(AssertionResult{Name: "broker restart", Reason: err.Error(), At: pl.log.since()})
			}
		})
		return nil
	}
	if f.Kind == "node_down" {
		c, ok := pl.broker.(*clusterBroker)
		if !ok {
			return errors.New("node_down: the broker is not a cluster")
		}
		if err := c.kill(f.Node - 1); err != nil {
			return fmt.Errorf("node_down: %w", err)
		}
		after(f.For, "node_down", "", func() {
			if err := c.restart(f.Node - 1); err != nil {
				pl.log.record(AssertionResult{Name: fmt.Sprintf("node %d restart", f.Node), Reason: err.Error(), At: pl.log.since()})
			}
		})
		return nil
	}
	bs, err := pl.agents.boards(f.Selector, "fault "+f.Kind)
	if err != nil {
		return err
	}
	for _, b := range bs {
		switch f.Kind {
		case "network_cut":
			b.Link.Cut()
			after(f.For, f.Kind, "", b.Link.Restore)
		case "network_restore":
			b.Link.Restore()
		case "clock_jump":
			b.Clock.Jump(time.Duration(f.By))
			after(f.For, f.Kind, "", func() { b.Clock.Jump(-time.Duration(f.By)) })
		case "clock_unsynced":
			b.Clock.SetSynced(false)
			after(f.For, f.Kind, "", func() { b.Clock.SetSynced(true) })
		case "sensor_stuck", "i2c_nack", "i2c_bus_error", "sensor_noisy":
			c, err := b.Chip(f.Chip)
			if err != nil {
				return fmt.Errorf("fault %s: %w", f.Kind, err)
			}
			if f.Kind == "sensor_noisy" {
				c.SetNoise(sim.TMP102Noise(f.Amplitude, rand.New(rand.NewPCG(pl.rng.Uint64(), pl.rng.Uint64()))))
				after(f.For, f.Kind, "", func() { c.SetNoise(nil) })
				continue
			}
			c.SetFault(map[string]sim.I2CFault{"sensor_stuck": sim.I2CStuck, "i2c_nack": sim.I2CNACK, "i2c_bus_error": sim.I2CBusError}[f.Kind])
			after(f.For, f.Kind, "", func() { c.SetFault(sim.I2CHealthy) })
		case "serial_silent", "serial_garbage":
			d, err := b.SerialDevice(f.Port)
			if err != nil {
				return fmt.Errorf("fault %s: %w", f.Kind, err)
			}
			d.Fault.SetFault(map[string]sim.SerialFault{"serial_silent": sim.SerialSilent, "serial_garbage": sim.SerialGarbage}[f.Kind])
			after(f.For, f.Kind, "", func() { d.Fault.SetFault(sim.SerialHealthy) })
		}
	}
	return nil
}

// push records a target pushed to a scope, version v or, with v 0, the
// one after the scope's latest, and returns its version.
func (p *pushed) push(scope string, v uint64) uint64 { return p.next(p.versions, scope, v) }

// release records a release of a module as push does a target.
func (p *pushed) release(module string, v uint64) uint64 { return p.next(p.releases, module, v) }

func (p *pushed) next(latest map[string]uint64, key string, v uint64) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if v == 0 {
		v = latest[key] + 1
	}
	latest[key] = v
	return v
}

// expected is the combined target version a device should report, from
// its scopes' latest versions as ternd combines them
// (fleet.CombinedVersion).
func (p *pushed) expected(id string) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	scopes := fleet.Scopes(id, p.groups[id])
	versions := make([]uint64, len(scopes))
	for i, s := range scopes {
		versions[i] = p.versions[s]
	}
	v, err := fleet.CombinedVersion(versions...)
	if err != nil {
		// Not reached: scenario versions are small. No report reaches
		// a version that does not exist.
		return math.MaxUint64
	}
	return v
}
