package testbench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/tern-iot/tern/runtime"
)

// kill plans a kill step's moments and victims from the seed and carries
// them out in the background (pl.kills), so that later steps keep their
// times; the assertions wait for the last kill.
func (pl *player) kill(ctx context.Context, st Step) {
	k := st.Kill
	plan := killPlan(pl.seed, st.line, pl.agents.selected(k.Selector), k)
	begin := pl.log.start.Add(time.Duration(st.At))
	var when []string
	for _, b := range plan {
		when = append(when, fmt.Sprintf("%s %s", fmtAt(time.Duration(st.At)+b.at), b.id))
	}
	pl.log.note("", "kill", fmt.Sprintf("%d of %s over %v, seed %d: %s", k.Count, k.Selector, k.Over, pl.seed, strings.Join(when, ", ")))
	pl.kills.Go(func() {
		running := 0
		for _, b := range plan {
			if !sleepUntil(ctx, begin.Add(b.at)) {
				return
			}
			if k.DuringJob != "" && !pl.awaitJobStart(ctx, b.id, k.DuringJob) {
				pl.log.record(AssertionResult{Name: "kill at " + fmtAt(time.Duration(st.At)+b.at), Line: st.line,
					Reason: fmt.Sprintf("%s did not report job %s started within a minute", b.id, k.DuringJob), At: pl.log.since()})
				return
			}
			if ok, _ := planRunning(pl.obs.snapshot(b.id)); ok {
				running++
			}
			if err := pl.powerCycle(ctx, b.id, time.Duration(k.Down), "kill"); err != nil {
				pl.log.record(AssertionResult{Name: "kill at " + fmtAt(time.Duration(st.At)+b.at), Line: st.line, Reason: err.Error(), At: pl.log.since()})
				pl.log.note(b.id, "step failed", err.Error())
				return
			}
		}
		pl.log.note("", "kills done", fmt.Sprintf("%d kills, %d of them into a running plan (by the events seen at the kill)", len(plan), running))
	})
}

// blow is one kill of a plan: when, after the step's time, and whom.
type blow struct {
	at time.Duration
	id string
}

// killPlan draws a kill step's moments and victims from ids. Each step
// draws from its own stream, (seed, its line): the same file and seed
// give the same kills, and two kill steps do not share their draws.
func killPlan(seed uint64, line int, ids []string, k *KillStep) []blow {
	rng := rand.New(rand.NewPCG(seed, uint64(line)))
	plan := make([]blow, k.Count)
	for i := range plan {
		if k.Over > 0 {
			plan[i].at = time.Duration(rng.Int64N(int64(k.Over)))
		}
		plan[i].id = ids[rng.IntN(len(ids))]
	}
	slices.SortStableFunc(plan, func(a, b blow) int { return int(a.at - b.at) })
	return plan
}

// powerCycle ends an agent as abruptly as it can be ended (SIGKILL for a
// Killer, a clean stop otherwise), waits down, and starts it again on the
// same data directory. What the observer knew of its convergence is
// forgotten in between: after a restart, it has to converge again.
func (pl *player) powerCycle(ctx context.Context, id string, down time.Duration, what string) error {
	mu := pl.power[id]
	mu.Lock()
	defer mu.Unlock()
	a := pl.agents.byID[id]
	_, doing := planRunning(pl.obs.snapshot(id))
	how := "stopped cleanly (an in-process agent cannot be killed)"
	if k, ok := a.(Killer); ok {
		how = "SIGKILL"
		if p, ok := a.(*ProcessAgent); ok {
			how += fmt.Sprintf(" to pid %d", p.PID())
		}
		if err := k.Kill(); err != nil {
			return fmt.Errorf("%s %s: %w", what, id, err)
		}
	} else if err := a.Stop(); err != nil {
		return fmt.Errorf("%s %s: %w", what, id, err)
	}
	pl.obs.restarted(id)
	pl.log.note(id, what, how+"; "+doing)
	if down > 0 && !sleepUntil(ctx, time.Now().Add(down)) {
		return ctx.Err()
	}
	if err := a.Start(ctx); err != nil {
		return fmt.Errorf("%s %s: start again: %w", what, id, err)
	}
	return nil
}

// planRunning tells from a device's events seen so far (the latest plan
// event, by seq) whether it was executing a plan. State reports do not
// say: a plan's phase changes are not all reported.
func planRunning(s seen) (bool, string) {
	var last *gotEvent
	for i, e := range s.events {
		switch e.Kind {
		case runtime.EventPlanFound, runtime.EventTaskStarted, runtime.EventTaskDone,
			runtime.EventConverged, runtime.EventPlanFailed, runtime.EventTaskFailed:
			if last == nil || e.Seq > last.Seq {
				last = &s.events[i]
			}
		}
	}
	switch {
	case last == nil:
		return false, "no plan yet"
	case last.Kind == runtime.EventConverged || last.Kind == runtime.EventPlanFailed || last.Kind == runtime.EventTaskFailed:
		return false, "between plans (last " + string(last.Kind) + ")"
	}
	return true, fmt.Sprintf("during a plan for v%d (last %s %s.%s)", last.TargetVersion, last.Kind, last.Module, last.Job)
}

// awaitJobStart waits until agent id reported job started (job.started),
// at most a minute.
func (pl *player) awaitJobStart(ctx context.Context, id, job string) bool {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		for _, e := range pl.obs.snapshot(id).events {
			if e.Kind == "job.started" && e.JobID == job {
				return true
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return false
}
