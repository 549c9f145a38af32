package testbench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/hal/sim"
)

// play runs the timeline, then the assertions.
func (r *run) play(ctx context.Context) {
	liveCtx, stopLive := context.WithCancel(ctx)
	var liveDone sync.WaitGroup
	liveDone.Go(func() { r.live(liveCtx) })
	defer func() { stopLive(); liveDone.Wait() }()

	faultCtx, stopFaults := context.WithCancel(ctx)
	defer stopFaults()
	defer r.kills.Wait() // before the agents are stopped
	var checks, restores sync.WaitGroup
	steps := slices.Clone(r.sc.Timeline)
	sort.SliceStable(steps, func(i, j int) bool { return steps[i].At < steps[j].At })
	for _, st := range steps {
		if !sleepUntil(ctx, r.start.Add(time.Duration(st.At))) {
			return
		}
		if st.Expect != nil {
			checks.Go(func() { r.record(r.check(ctx, st.Expect)) })
			continue
		}
		if err := r.do(ctx, faultCtx, &restores, st); err != nil {
			r.record(AssertionResult{Name: "timeline step at " + st.At.String(), Line: st.line, Reason: err.Error(), At: r.since()})
			r.note("", "step failed", err.Error())
		}
	}
	// The timeline is done when the last kill is: the assertions measure
	// from after it.
	r.kills.Wait()
	// nothing_lost is checked last: once the other checks are done, the
	// events they waited for have arrived too.
	for i := range r.sc.Assertions {
		if r.sc.Assertions[i].NothingLost == nil {
			checks.Go(func() { r.record(r.check(ctx, &r.sc.Assertions[i])) })
		}
	}
	checks.Wait()
	for i := range r.sc.Assertions {
		if r.sc.Assertions[i].NothingLost != nil {
			checks.Go(func() { r.record(r.check(ctx, &r.sc.Assertions[i])) })
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
func (r *run) do(ctx, faultCtx context.Context, restores *sync.WaitGroup, st Step) error {
	after := func(d Duration, what, who string, undo func()) {
		if d == 0 {
			return
		}
		restores.Go(func() {
			select {
			case <-time.After(time.Duration(d)):
				undo()
				r.note(who, what+" ends", "")
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
		r.mu.Lock()
		v := p.Version
		if v == 0 {
			v = r.versions[scope] + 1
		}
		r.versions[scope] = v
		r.mu.Unlock()
		env := fleet.TargetEnvelope{Format: fleet.Format, Version: v, Target: doc, Issued: time.Now().UTC()}
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		r.note("", "push", fmt.Sprintf("%s v%d %s", who, v, doc))
		if p.Group != "" {
			err = r.op.PushGroupTarget(pctx, p.Group, env)
		} else {
			err = r.op.PushTarget(pctx, p.Device, env)
		}
		if err != nil {
			return fmt.Errorf("push to %s: %w", who, err)
		}
	case st.Release != nil:
		rel := st.Release
		b, err := r.code(rel.ModuleSource)
		if err != nil {
			return fmt.Errorf("release %s: %w", rel.Module, err)
		}
		r.mu.Lock()
		v := rel.Version
		if v == 0 {
			v = r.releases[rel.Module] + 1
		}
		r.releases[rel.Module] = v
		r.mu.Unlock()
		src := rel.Plugin + rel.Build + rel.Wasm
		r.note("", "release", fmt.Sprintf("%s v%d from %s (%d KiB)", rel.Module, v, src, len(b)>>10))
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := r.op.PushRelease(pctx, fleet.NewRelease(rel.Module, v, b)); err != nil {
			return fmt.Errorf("release %s: %w", rel.Module, err)
		}
	case st.Restart != nil:
		for _, id := range r.selected(*st.Restart) {
			if err := r.powerCycle(ctx, id, 0, "restart"); err != nil {
				return err
			}
		}
	case st.Kill != nil:
		r.kill(ctx, st)
	case st.Press != nil:
		bs, err := r.boards(st.Press.Selector, "press")
		if err != nil {
			return err
		}
		d := time.Duration(st.Press.For)
		if d == 0 {
			d = 200 * time.Millisecond
		}
		r.note("", "press", fmt.Sprintf("%s %s for %v", st.Press.Selector, st.Press.Line, d))
		for _, b := range bs {
			if err := b.Press(st.Press.Line, d); err != nil {
				return fmt.Errorf("press: %w", err)
			}
		}
	case st.MoveGPS != nil:
		g := st.MoveGPS
		bs, err := r.boards(g.Selector, "move_gps")
		if err != nil {
			return err
		}
		r.note("", "move_gps", fmt.Sprintf("%s to %.4f, %.4f", g.Selector, g.Lat, g.Lon))
		for _, b := range bs {
			gps, err := b.GPS(g.Port)
			if err != nil {
				return fmt.Errorf("move_gps: %w", err)
			}
			gps.Move(g.Lat, g.Lon)
		}
	case st.Fault != nil:
		return r.fault(st.Fault, after)
	}
	return nil
}

func (r *run) fault(f *FaultStep, after func(Duration, string, string, func())) error {
	detail := f.Selector.String()
	if f.Kind == "broker_down" {
		detail = ""
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
	r.note("", "fault "+f.Kind, strings.TrimSpace(detail))
	if f.Kind == "broker_down" {
		if err := r.broker.Stop(); err != nil {
			return fmt.Errorf("broker_down: %w", err)
		}
		after(f.For, "broker_down", "", func() {
			if err := r.broker.Start(); err != nil {
				r.record(AssertionResult{Name: "broker restart", Reason: err.Error(), At: r.since()})
			}
		})
		return nil
	}
	bs, err := r.boards(f.Selector, "fault "+f.Kind)
	if err != nil {
		return err
	}
	for _, b := range bs {
		switch f.Kind {
		case "network_cut":
			b.Link.Cut()
			after(f.For, f.Kind, "", b.Link.Restore)
		case "clock_jump":
			b.Clock.Jump(time.Duration(f.By))
			after(f.For, f.Kind, "", func() { b.Clock.Jump(-time.Duration(f.By)) })
		case "sensor_stuck", "i2c_nack", "i2c_bus_error", "sensor_noisy":
			c, err := b.Chip(f.Chip)
			if err != nil {
				return fmt.Errorf("fault %s: %w", f.Kind, err)
			}
			if f.Kind == "sensor_noisy" {
				c.SetNoise(sim.TMP102Noise(f.Amplitude, rand.New(rand.NewPCG(r.rng.Uint64(), r.rng.Uint64()))))
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
