package jobs

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/tern-iot/tern/runtime/api"
)

// Spec is what a job says about when and after what it runs. The work
// itself (module, job, arguments) is the caller's.
type Spec struct {
	// ID names the job on the device, for dependencies and reports.
	ID string
	// NotBefore is the earliest time the job (or a recurring job's first
	// run) may start; zero: as soon as it is known.
	NotBefore time.Time
	// Cron, when set, makes the job recurring: five fields (minute hour
	// day-of-month month day-of-week), or a descriptor such as @daily,
	// in the time zone TZ.
	Cron string
	// TZ is the IANA time zone of Cron ("Europe/Berlin"); default UTC.
	TZ string
	// Deadline, when set, is the time after which a one-shot job that has
	// not started expires, and a recurring job starts no new run.
	Deadline time.Time
	// Window, when set, is how late after its scheduled time a recurring
	// run may still start (a device that was off at 4 am and is back at
	// 10 am skips the 4 am run with a window of 2 h, and counts it
	// missed). Zero: any lateness.
	Window time.Duration
	// After are the jobs this one waits for.
	After []Dep
	// Attempts is how many times one run is tried before it fails;
	// default 1.
	Attempts int
	// Backoff is the wait after a failed attempt before the next, doubled
	// at each; default 10 s.
	Backoff time.Duration
}

// Dep is a dependency on another job of the same device.
type Dep struct {
	// Job is the other job's ID.
	Job string
	// Ended: run once the other job ended, whatever its outcome; false:
	// only once it succeeded (and never, if it ended otherwise).
	Ended bool
}

// Phase is where a job is.
type Phase string

// The phases of a job. The first five are waiting or running; the rest
// end a one-shot job (a recurring job goes back to waiting after each run).
const (
	PhaseQueued            Phase = "queued"             // known, not yet looked at
	PhaseWaitingTime       Phase = "waiting"            // for its time
	PhaseWaitingClock      Phase = "waiting_clock"      // for the clock to be synchronised
	PhaseWaitingDependency Phase = "waiting_dependency" // for a job it depends on
	PhaseRunning           Phase = "running"
	PhaseSucceeded         Phase = "succeeded"
	PhaseFailed            Phase = "failed"
	PhaseExpired           Phase = "expired"
	PhaseCanceled          Phase = "canceled"
	PhaseInterrupted       Phase = "interrupted" // running when the device stopped, and not to be retried
)

// Ended reports whether p ends a job: nothing more will happen to it.
func (p Phase) Ended() bool { return api.JobEnded(string(p)) }

// State is what happened to a job so far; the caller keeps it across
// restarts.
type State struct {
	Phase Phase
	// Attempt is how many attempts the current run has had.
	Attempt int
	// RetryAt is when the next attempt of the current run may start,
	// after a failed one; zero between runs.
	RetryAt time.Time
	// Next is when the job is next looked at: its time, its next
	// scheduled run, or RetryAt; zero when it waits for something else.
	Next time.Time `json:",omitzero"`
	// Last is the scheduled time of a recurring job's last run.
	Last time.Time
	// Missed counts a recurring job's runs that did not start: the device
	// was off or its clock jumped past them, or they were later than
	// Window.
	Missed int
	// Why says why the job waits or how it ended, in words.
	Why string `json:",omitempty"`
	// Started and Ended are when the current or last run started and
	// ended, by the device's clock.
	Started time.Time `json:",omitzero"`
	Ended   time.Time `json:",omitzero"`
	// Result is what the last run returned (JSON, at most MaxResult
	// bytes); Error, why it failed.
	Result json.RawMessage `json:",omitempty"`
	Error  string          `json:",omitempty"`
	// Runs are a recurring job's last runs, oldest first, at most MaxRuns.
	Runs []RunRecord `json:",omitempty"`
}

// RunRecord is one run of a recurring job, as its status reports it
// (api.JobRun: the device keeps what it reports).
type RunRecord = api.JobRun

// MaxRuns bounds the runs a recurring job's state keeps.
const MaxRuns = 10

// MaxResult bounds a run's result, in bytes of JSON: a result is kept on
// the device and retained on the broker in the job's status.
const MaxResult = 64 << 10

// AddRun appends r to the state's runs, dropping the oldest beyond
// MaxRuns.
func (st *State) AddRun(r RunRecord) {
	st.Runs = append(st.Runs, r)
	if n := len(st.Runs); n > MaxRuns {
		st.Runs = append(st.Runs[:0:0], st.Runs[n-MaxRuns:]...)
	}
}

// Action is what Decide tells the caller to do.
type Action int

const (
	// Wait: ask again at Decision.Until (zero: when something changes:
	// the clock is synchronised, a dependency moves).
	Wait Action = iota
	// Run the job now; for a recurring job, Decision.Scheduled is the
	// run's scheduled time, to record in State.Last once it started.
	Run
	// End the job in Decision.Phase, for Decision.Why.
	End
)

// Decision is Decide's answer.
type Decision struct {
	Action Action
	Phase  Phase     // the phase to report (waiting_*, running, or an end)
	Until  time.Time // Wait: when to ask again
	// Scheduled, when set, is a recurring run's scheduled time: the run
	// to start (Run), or one skipped as too late (Wait). Either way the
	// caller records it in State.Last.
	Scheduled time.Time
	// Missed is how many recurring runs this decision skips, to add to
	// State.Missed, whatever the action.
	Missed int
	Why    string
}

// Check checks s, with the errors an operator can act on.
func (s Spec) Check() error {
	var errs []error
	if s.ID == "" {
		errs = append(errs, errors.New("no id"))
	}
	if s.Cron == "" && s.TZ != "" {
		errs = append(errs, fmt.Errorf("tz %q without cron: a one-shot time carries its own zone (not_before: 2026-12-06T04:00:00+01:00)", s.TZ))
	}
	if s.Cron != "" {
		if sched, err := s.schedule(); err != nil {
			errs = append(errs, err)
		} else if sched.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
			// robfig/cron looks five years ahead: a schedule with no time
			// in them (the 30th of February) never fires.
			errs = append(errs, fmt.Errorf("cron %q never fires (no such date in any year)", s.Cron))
		}
	} else if s.Window != 0 {
		errs = append(errs, errors.New("window is for a recurring job (cron); a one-shot job has a deadline"))
	}
	if !s.Deadline.IsZero() && !s.NotBefore.IsZero() && !s.Deadline.After(s.NotBefore) {
		errs = append(errs, fmt.Errorf("deadline %s is not after not_before %s: the job could never start", s.Deadline.Format(time.RFC3339), s.NotBefore.Format(time.RFC3339)))
	}
	if s.Attempts < 0 || s.Attempts > MaxAttempts {
		errs = append(errs, fmt.Errorf("attempts %d: from 1 to %d", s.Attempts, MaxAttempts))
	}
	if s.Backoff < 0 || s.Window < 0 {
		errs = append(errs, errors.New("backoff and window cannot be negative"))
	}
	if len(s.After) > MaxDeps {
		errs = append(errs, fmt.Errorf("after: %d jobs, at most %d", len(s.After), MaxDeps))
	}
	for _, d := range s.After {
		if d.Job == s.ID {
			errs = append(errs, fmt.Errorf("after: the job %s waits for itself, so it would never run", s.ID))
		}
	}
	return errors.Join(errs...)
}

// Limits on what a Spec may ask.
const (
	MaxAttempts = 100
	MaxDeps     = 16
)

// schedule is Cron parsed in TZ. Decide asks for it at every decision,
// so parsed schedules are kept (loading a zone reads the disk).
func (s Spec) schedule() (cron.Schedule, error) {
	key := s.TZ + "\x00" + s.Cron
	if v, ok := schedules.Load(key); ok {
		p := v.(parsed)
		return p.sched, p.err
	}
	sched, err := parseSchedule(s.Cron, s.TZ)
	if schedulesKept.Add(1) > maxSchedulesKept {
		schedules.Clear() // hostile or churning schedules: start over
		schedulesKept.Store(0)
	}
	schedules.Store(key, parsed{sched, err})
	return sched, err
}

type parsed struct {
	sched cron.Schedule
	err   error
}

// schedules caches parseSchedule by time zone and expression, at most
// about maxSchedulesKept of them.
var (
	schedules     sync.Map
	schedulesKept atomic.Int64
)

const maxSchedulesKept = 4 * MaxJobs

func parseSchedule(expr, tz string) (cron.Schedule, error) {
	if tz == "" {
		tz = "UTC"
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("tz %q: %v; use an IANA name such as Europe/Berlin or UTC", tz, err)
	}
	if strings.Contains(expr, "TZ=") {
		return nil, fmt.Errorf("cron %q: give the time zone in tz, not in the expression", expr)
	}
	sched, err := cron.ParseStandard(expr)
	if err != nil {
		return nil, fmt.Errorf("cron %q: %v; five fields: minute hour day-of-month month day-of-week, e.g. \"0 4 * * *\" for 4 am every day", expr, err)
	}
	if spec, ok := sched.(*cron.SpecSchedule); ok {
		spec.Location = loc
	}
	return sched, nil
}

// maxCatchUp bounds how many scheduled times Decide steps through to find
// the latest one a recurring job missed (a minutely job and a clock that
// jumped a year: half a million). Past it, the runs between are counted
// as missed all the same.
const maxCatchUp = 10_000

// Decide says what to do with the job s in state st at now, on a clock
// that is synchronised or not, given the phases of the jobs it depends on
// (a job missing from deps is not on the device).
func Decide(s Spec, st State, now time.Time, synced bool, deps map[string]Phase) Decision {
	if st.Phase.Ended() || st.Phase == PhaseRunning {
		return Decision{Action: Wait, Phase: st.Phase, Why: "nothing to decide"}
	}
	for _, d := range s.After {
		p, ok := deps[d.Job]
		switch {
		case !ok:
			return Decision{Action: Wait, Phase: PhaseWaitingDependency, Why: fmt.Sprintf("waits for job %s, which this device does not have (yet)", d.Job)}
		case !p.Ended():
			return Decision{Action: Wait, Phase: PhaseWaitingDependency, Why: fmt.Sprintf("waits for job %s (%s)", d.Job, p)}
		case !d.Ended && p != PhaseSucceeded:
			return Decision{Action: End, Phase: PhaseCanceled, Why: fmt.Sprintf("job %s, which it runs after, ended %s, not succeeded", d.Job, p)}
		}
	}
	wallClock := s.Cron != "" || !s.NotBefore.IsZero() || !s.Deadline.IsZero()
	if wallClock && !synced {
		return Decision{Action: Wait, Phase: PhaseWaitingClock, Why: "waits for the clock to be synchronised (its time is wall-clock time)"}
	}
	if !st.RetryAt.IsZero() {
		// A run under way, after a failed attempt: its next attempt,
		// past any deadline (the run started before it) and, for a
		// recurring job, for the same scheduled time.
		if now.Before(st.RetryAt) {
			return Decision{Action: Wait, Phase: PhaseWaitingTime, Until: st.RetryAt, Why: fmt.Sprintf("attempt %d failed; the next at %s", st.Attempt, st.RetryAt.Format(time.RFC3339))}
		}
		return Decision{Action: Run, Phase: PhaseRunning, Scheduled: st.Last}
	}
	if s.Cron == "" {
		return decideOnce(s, now)
	}
	return decideRecurring(s, st, now)
}

func decideOnce(s Spec, now time.Time) Decision {
	if !s.Deadline.IsZero() && now.After(s.Deadline) {
		return Decision{Action: End, Phase: PhaseExpired, Why: fmt.Sprintf("not started by its deadline, %s", s.Deadline.Format(time.RFC3339))}
	}
	if now.Before(s.NotBefore) {
		return Decision{Action: Wait, Phase: PhaseWaitingTime, Until: s.NotBefore, Why: "waits for its time, " + s.NotBefore.Format(time.RFC3339)}
	}
	return Decision{Action: Run, Phase: PhaseRunning}
}

func decideRecurring(s Spec, st State, now time.Time) Decision {
	sched, err := s.schedule()
	if err != nil {
		return Decision{Action: End, Phase: PhaseFailed, Why: err.Error()}
	}
	from := st.Last
	switch {
	case !from.IsZero():
	case !s.NotBefore.IsZero():
		// The first run: at NotBefore or after; a schedule time equal
		// to NotBefore counts (Next looks strictly after).
		from = s.NotBefore.Add(-time.Second)
	default:
		// No start given: the first scheduled time from now on (tern job
		// submit gives one: the submission's time).
		from = now.Add(-time.Second)
	}
	next := sched.Next(from)
	if !s.Deadline.IsZero() && next.After(s.Deadline) {
		return Decision{Action: End, Phase: PhaseExpired, Why: fmt.Sprintf("its schedule ended at its deadline, %s", s.Deadline.Format(time.RFC3339))}
	}
	if next.IsZero() {
		return Decision{Action: End, Phase: PhaseExpired, Why: "its schedule has no time left"}
	}
	if next.After(now) {
		// A clock that jumped back lands here too: Last is the
		// scheduled time of the last run, so that run does not come
		// again.
		return Decision{Action: Wait, Phase: PhaseWaitingTime, Until: next, Why: "waits for its next run, " + next.Format(time.RFC3339)}
	}
	// Due: run the latest scheduled time not after now; the ones before
	// it were missed (the device was off, or its clock jumped).
	missed := 0
	for i := 0; i < maxCatchUp; i++ {
		after := sched.Next(next)
		if after.IsZero() || after.After(now) || (!s.Deadline.IsZero() && after.After(s.Deadline)) {
			break
		}
		next = after
		missed++
	}
	if s.Window > 0 && now.Sub(next) > s.Window {
		following := sched.Next(next)
		return Decision{Action: Wait, Phase: PhaseWaitingTime, Until: following, Scheduled: next, Missed: missed + 1,
			Why: fmt.Sprintf("its run of %s is %v late, past its window of %v; skipped, the next at %s", next.Format(time.RFC3339), now.Sub(next).Round(time.Second), s.Window, following.Format(time.RFC3339))}
	}
	return Decision{Action: Run, Phase: PhaseRunning, Scheduled: next, Missed: missed}
}

// BackoffAfter is how long to wait after failed attempt n (from 1) of s: its
// Backoff (default 10 s) doubled at each attempt, at most an hour.
func (s Spec) BackoffAfter(n int) time.Duration {
	d := s.Backoff
	if d == 0 {
		d = 10 * time.Second
	}
	for i := 1; i < n && d < time.Hour; i++ {
		d *= 2
	}
	return min(d, time.Hour)
}
