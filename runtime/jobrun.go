package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tern-iot/tern/runtime/api"
	"github.com/tern-iot/tern/runtime/internal/wasmhost"
	"github.com/tern-iot/tern/runtime/jobs"
	"github.com/tern-iot/tern/sdk/abi"
)

// Fleet jobs (issue 17, docs/jobs.md): one-shot and scheduled work, a
// module's command run with the job's arguments. The agent keeps them in
// a jobs.Book, decides when each runs with jobs.Decide, and runs them on
// its loop's goroutine, between steps: never while a plan's tasks run, so
// a job and a task never touch the same paths or hardware at once.

// JobReporter carries job statuses to the fleet, retained per device and
// job. A Reporter that also implements it gets them; the agent retries a
// status it refused, the latest one only.
type JobReporter interface {
	PublishJobStatus(ctx context.Context, s api.JobStatus) error
}

// JobStatus is a job's report (package api).
type JobStatus = api.JobStatus

// Job event kinds: see package api.
const (
	EventJobAccepted    = api.EventJobAccepted
	EventJobRefused     = api.EventJobRefused
	EventJobStarted     = api.EventJobStarted
	EventJobSucceeded   = api.EventJobSucceeded
	EventJobFailed      = api.EventJobFailed
	EventJobExpired     = api.EventJobExpired
	EventJobCanceled    = api.EventJobCanceled
	EventJobInterrupted = api.EventJobInterrupted
	EventJobMissed      = api.EventJobMissed
)

// jobsUnsynced is how often jobs that wait for the clock to be
// synchronised look again.
const jobsUnsynced = 10 * time.Second

// jobsAtLeast is how often an agent with no sensor looks at its jobs even
// when none is due: the wall clock may have jumped ahead meanwhile, which
// the loop's timers (monotonic) do not see.
const jobsAtLeast = time.Minute

// OfferJob keeps a job, or a newer version of one held, and returns once
// it is on the disk: acknowledging the job's message after that loses
// nothing. It returns jobs.ErrOlder, quietly, for a version held already
// (redelivery), and reports any other refusal as a job.refused event.
func (a *Agent) OfferJob(j jobs.Job) error {
	if err := j.Spec.Check(); err != nil {
		err = fmt.Errorf("job %s version %d refused: %w", j.Spec.ID, j.Version, err)
		a.JobRefused(j.Spec.ID, j.Module, j.Job, err)
		return err
	}
	if err := a.book.Offer(j); err != nil {
		if !errors.Is(err, jobs.ErrOlder) { // redelivery: quiet
			a.JobRefused(j.Spec.ID, j.Module, j.Job, err)
		}
		return err
	}
	kind, msg := EventJobAccepted, fmt.Sprintf("version %d", j.Version)
	if j.Canceled {
		kind, msg = EventJobCanceled, fmt.Sprintf("canceled by the operator (version %d)", j.Version)
	}
	a.event(Event{Kind: kind, JobID: j.Spec.ID, Module: j.Module, Job: j.Job, Message: msg})
	a.jobMu.Lock()
	a.jobDirty[j.Scope] = true
	a.jobStale = true
	a.jobMu.Unlock()
	signal(a.jobWake)
	return nil
}

// WantsJob reports whether OfferJob would consider version of the job
// scope (jobs.Book.Wants): jobs.ErrOlder for a redelivery, jobs.ErrFull
// when the agent holds as many jobs as it may. A caller checks it before
// costly work on a job, such as its signature.
func (a *Agent) WantsJob(scope string, version uint64) error { return a.book.Wants(scope, version) }

// JobRefused reports a job refused, with a job.refused event (rate-bound
// with the others): by OfferJob, or before it (its signature did not
// verify, or it did not parse).
func (a *Agent) JobRefused(id, module, command string, err error) {
	a.event(Event{Kind: EventJobRefused, JobID: id, Module: module, Job: command, Message: err.Error()})
}

// Jobs returns the jobs the agent holds, ordered by id.
func (a *Agent) Jobs() []jobs.Job { return a.book.Jobs() }

// openJobs opens the agent's jobs in its store, at New. Jobs that were
// running when the agent stopped are interrupted (jobs.Open).
func (a *Agent) openJobs() error {
	b, err := jobs.Open(a.opts.Store)
	if err != nil {
		return err
	}
	a.book = b
	a.jobDirty = map[string]bool{}
	a.jobStale = true
	// Every status again: the reporter keeps statuses in memory only,
	// and one that changed just before the stop (or while offline) would
	// otherwise stay stale on the broker for good. At most MaxJobs.
	interrupted := b.Interrupted()
	for _, j := range b.Jobs() {
		a.jobDirty[j.Scope] = true
		if slices.Contains(interrupted, j.Scope) {
			a.event(Event{Kind: EventJobInterrupted, JobID: j.Spec.ID, Module: j.Module, Job: j.Job, Message: j.State.Why})
		}
	}
	return nil
}

// clockSynced reports whether the wall clock is synchronised.
func (a *Agent) clockSynced() bool {
	return a.opts.ClockSynced == nil || a.opts.ClockSynced()
}

// jobsWait is how long the loop may wait before its jobs need a look.
func (a *Agent) jobsWait(now time.Time) (time.Duration, bool) {
	a.jobMu.Lock()
	defer a.jobMu.Unlock()
	switch {
	case a.jobStale:
		return 0, true
	case a.jobClock:
		return jobsUnsynced, true
	case !a.jobDue.IsZero():
		return min(a.jobDue.Sub(now), jobsAtLeast), true
	case a.jobTimed:
		return jobsAtLeast, true
	}
	return 0, false
}

// runJobs decides every job that may have something to do and runs
// those that are due, one at a time. It does nothing when nothing
// changed and no job's time has come.
func (a *Agent) runJobs(ctx context.Context) {
	now, synced := a.opts.Clock(), a.clockSynced()
	a.jobMu.Lock()
	due := a.jobStale || synced != a.jobSynced || !a.jobDue.IsZero() && !now.Before(a.jobDue)
	a.jobStale, a.jobSynced = false, synced
	a.jobMu.Unlock()
	if !due {
		return
	}
	// Each pass decides every job; one that runs or ends may release
	// another (a dependency), so passes go on until none changes. A pass
	// runs at most each job once: this ends.
	var next time.Time
	clock, timed := false, false
	for pass, changed := 0, true; changed && pass <= jobs.MaxJobs && ctx.Err() == nil; pass++ {
		changed, next, clock, timed = false, time.Time{}, false, false
		held := a.book.Jobs()
		phases := make(map[string]jobs.Phase, len(held))
		for _, j := range held {
			phases[j.Spec.ID] = j.State.Phase
		}
		for _, j := range held {
			if ctx.Err() != nil {
				return // stopping: a job left running is interrupted at the next start
			}
			now := a.opts.Clock()
			d := jobs.Decide(j.Spec, j.State, now, a.clockSynced(), phases)
			switch d.Action {
			case jobs.Run:
				a.runJob(ctx, j, d, now)
				changed = true
				continue
			case jobs.End:
				st := j.State
				st.Phase, st.Why, st.Ended, st.Next = d.Phase, d.Why, now, time.Time{}
				if a.updateJob(j, st) {
					a.event(Event{Kind: endKind(d.Phase), JobID: j.Spec.ID, Module: j.Module, Job: j.Job, Message: d.Why})
				}
				changed = true
				continue
			}
			if j.State.Phase.Ended() || j.State.Phase == jobs.PhaseRunning {
				continue
			}
			st := j.State
			st.Phase, st.Why, st.Next = d.Phase, d.Why, d.Until
			if !d.Scheduled.IsZero() {
				st.Last = d.Scheduled
			}
			st.Missed += d.Missed
			if d.Missed > 0 {
				a.event(Event{Kind: EventJobMissed, JobID: j.Spec.ID, Module: j.Module, Job: j.Job, Message: fmt.Sprintf("%d runs missed: %s", d.Missed, d.Why)})
			}
			if st.Phase != j.State.Phase || st.Why != j.State.Why || !st.Next.Equal(j.State.Next) || d.Missed > 0 || !d.Scheduled.IsZero() {
				changed = !a.updateJob(j, st) || changed // not stored: a new version came; decide it
			}
			clock = clock || d.Phase == jobs.PhaseWaitingClock
			timed = timed || j.Spec.Cron != "" || !j.Spec.NotBefore.IsZero() || !j.Spec.Deadline.IsZero()
			if !d.Until.IsZero() && (next.IsZero() || d.Until.Before(next)) {
				next = d.Until
			}
		}
	}
	a.jobMu.Lock()
	a.jobDue, a.jobClock, a.jobTimed = next, clock, timed
	a.jobMu.Unlock()
}

// endKind is the event that says a job ended in phase p.
func endKind(p jobs.Phase) EventKind {
	switch p {
	case jobs.PhaseSucceeded:
		return EventJobSucceeded
	case jobs.PhaseExpired:
		return EventJobExpired
	case jobs.PhaseCanceled:
		return EventJobCanceled
	case jobs.PhaseInterrupted:
		return EventJobInterrupted
	}
	return EventJobFailed
}

// runJob runs one attempt of j, which Decide said to run at now: it
// records the start on the disk first (a power cut during the run leaves
// it interrupted), calls the module's command, and records the outcome.
func (a *Agent) runJob(ctx context.Context, j jobs.Job, d jobs.Decision, now time.Time) {
	st := j.State
	retry := !st.RetryAt.IsZero()
	if !retry {
		st.Attempt = 0
	}
	st.Attempt++
	st.Phase, st.Started, st.Ended, st.Next, st.RetryAt = jobs.PhaseRunning, now, time.Time{}, time.Time{}, time.Time{}
	st.Result, st.Error, st.Why = nil, "", ""
	if !d.Scheduled.IsZero() {
		st.Last = d.Scheduled
	}
	st.Missed += d.Missed
	if d.Missed > 0 {
		a.event(Event{Kind: EventJobMissed, JobID: j.Spec.ID, Module: j.Module, Job: j.Job, Message: fmt.Sprintf("%d earlier runs missed; running the latest, of %s", d.Missed, d.Scheduled.Format(time.RFC3339))})
	}
	attempts := max(1, j.Spec.Attempts)
	if !a.updateJob(j, st) {
		return // not on the disk: not run, or a power cut would run it twice
	}
	j.State = st
	a.event(Event{Kind: EventJobStarted, JobID: j.Spec.ID, Module: j.Module, Job: j.Job, Message: fmt.Sprintf("attempt %d of %d", st.Attempt, attempts)})
	if a.opts.Reporter != nil {
		a.publishEvents(ctx) // job.started, then the status "running", before the run
		a.publishJobStatuses(ctx)
	}
	a.log.Info("job started", "job", j.Spec.ID, "module", j.Module, "command", j.Job, "attempt", st.Attempt)

	result, err := a.command(ctx, j)
	if ctx.Err() != nil {
		return // cut short by the agent's stop: interrupted, at the next start
	}
	ended := a.opts.Clock()
	st.Ended = ended
	recurring := j.Spec.Cron != ""
	kind := EventJobSucceeded
	msg := fmt.Sprintf("attempt %d of %d, in %v", st.Attempt, attempts, ended.Sub(now).Round(time.Millisecond))
	switch {
	case err == nil:
		st.Result, st.Phase = result, jobs.PhaseSucceeded
	case st.Attempt < attempts:
		st.Error = clip(err.Error(), maxEventText)
		st.RetryAt = ended.Add(j.Spec.BackoffAfter(st.Attempt))
		st.Phase, st.Next = jobs.PhaseWaitingTime, st.RetryAt
		st.Why = fmt.Sprintf("attempt %d of %d failed; the next at %s", st.Attempt, attempts, st.RetryAt.Format(time.RFC3339))
		kind, msg = EventJobFailed, fmt.Sprintf("attempt %d of %d: %s; the next at %s", st.Attempt, attempts, st.Error, st.RetryAt.Format(time.RFC3339))
	default:
		st.Error, st.Phase = clip(err.Error(), maxEventText), jobs.PhaseFailed
		kind, msg = EventJobFailed, fmt.Sprintf("attempt %d of %d, the last: %s", st.Attempt, attempts, st.Error)
	}
	if recurring && st.RetryAt.IsZero() {
		// The run ended; the schedule goes on.
		st.AddRun(jobs.RunRecord{Scheduled: st.Last, Started: now, Ended: ended, Phase: string(st.Phase), Attempts: st.Attempt, Error: st.Error})
		st.Phase, st.Why = jobs.PhaseQueued, "its last run "+string(st.Phase)
	}
	a.updateJob(j, st)
	a.event(Event{Kind: kind, JobID: j.Spec.ID, Module: j.Module, Job: j.Job, Message: msg})
	a.log.Info("job ended", "job", j.Spec.ID, "outcome", kind, "attempt", st.Attempt, "err", st.Error)
}

// updateJob stores j's new state and marks its status for publishing. It
// reports whether the state is on the disk.
func (a *Agent) updateJob(j jobs.Job, st jobs.State) bool {
	if err := a.book.Update(j.Scope, j.Version, st); err != nil {
		if !errors.Is(err, jobs.ErrChanged) {
			a.log.Error("job state not stored", "job", j.Spec.ID, "err", err)
		}
		return false
	}
	a.jobMu.Lock()
	a.jobDirty[j.Scope] = true
	a.jobMu.Unlock()
	return true
}

// command calls j's command in its module, in the run phase (the module's
// grants, deadline and sandbox), with the job's arguments as the call's
// target, and returns its result.
func (a *Agent) command(ctx context.Context, j jobs.Job) (json.RawMessage, error) {
	m, err := a.set.module(j.Module)
	if err != nil {
		return nil, fmt.Errorf("module %s is not on this device, or did not load: configure or release it (tern module release), then submit the job again or let its attempts retry", j.Module)
	}
	var names []string
	found := false
	for _, js := range m.m.Manifest().Jobs {
		if js.IsCommand() {
			names = append(names, js.Name)
			found = found || js.Name == j.Job
		}
	}
	if !found {
		return nil, fmt.Errorf("module %s (version %s) has no command %q; its commands: %v", j.Module, m.m.Manifest().Version, j.Job, names)
	}
	args := j.Args
	if len(args) == 0 {
		args = json.RawMessage(`{}`)
	}
	v, err := m.m.Call(wasmhost.WithState(ctx, live{a}), wasmhost.PhaseRun, "run", abi.Call{Job: j.Job, Target: args})
	if err != nil && errors.Is(err, wasmhost.ErrCall) {
		a.event(Event{Kind: EventModuleError, Module: j.Module, Job: j.Job, JobID: j.Spec.ID, Message: err.Error()})
	}
	a.moduleOutcome(j.Module, "run", err)
	if err != nil {
		return nil, err
	}
	if len(v) > jobs.MaxResult {
		return nil, fmt.Errorf("command %s returned a result of %d bytes, over the bound of %d: return less, and keep the rest on the device", j.Job, len(v), jobs.MaxResult)
	}
	if string(v) == "null" {
		v = nil
	}
	return v, nil
}

// publishJobStatuses hands the statuses of jobs that changed to the
// reporter, if it takes them; a refused one is tried again later.
func (a *Agent) publishJobStatuses(ctx context.Context) {
	r, ok := a.opts.Reporter.(JobReporter)
	if !ok {
		return
	}
	a.jobMu.Lock()
	if len(a.jobDirty) == 0 {
		a.jobMu.Unlock()
		return
	}
	dirty := a.jobDirty
	a.jobDirty = map[string]bool{}
	a.jobMu.Unlock()
	now := a.opts.Clock()
	for _, j := range a.book.Jobs() {
		if !dirty[j.Scope] {
			continue
		}
		if err := r.PublishJobStatus(ctx, statusOf(j, now)); err != nil {
			a.jobMu.Lock()
			a.jobDirty[j.Scope] = true
			a.jobMu.Unlock()
			a.log.Debug("job status not published; again later", "job", j.Spec.ID, "err", err)
		}
	}
}

// jobsUnpublished reports whether a job status waits to be published.
func (a *Agent) jobsUnpublished() bool {
	if _, ok := a.opts.Reporter.(JobReporter); !ok {
		return false
	}
	a.jobMu.Lock()
	defer a.jobMu.Unlock()
	return len(a.jobDirty) > 0
}

// statusOf is j's report.
func statusOf(j jobs.Job, now time.Time) JobStatus {
	return JobStatus{Time: now, ID: j.Spec.ID, Scope: j.Scope, Version: j.Version, Module: j.Module, Command: j.Job,
		Phase: string(j.State.Phase), Why: j.State.Why, Attempt: j.State.Attempt, Next: j.State.Next,
		Started: j.State.Started, Ended: j.State.Ended, Result: j.State.Result, Error: j.State.Error, Missed: j.State.Missed, Runs: j.State.Runs}
}
