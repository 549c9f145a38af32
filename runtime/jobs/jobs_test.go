package jobs_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/runtime/jobs"
)

func at(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec jobs.Spec
		want string // "" for none
	}{
		{"now", jobs.Spec{ID: "j1"}, ""},
		{"cron in a zone", jobs.Spec{ID: "j1", Cron: "0 4 * * *", TZ: "Europe/Berlin"}, ""},
		{"descriptor", jobs.Spec{ID: "j1", Cron: "@daily"}, ""},
		{"no id", jobs.Spec{}, "no id"},
		{"bad cron", jobs.Spec{ID: "j1", Cron: "0 4 * *"}, "five fields"},
		{"never fires", jobs.Spec{ID: "j1", Cron: "0 0 30 2 *"}, "never fires"},
		{"bad zone", jobs.Spec{ID: "j1", Cron: "0 4 * * *", TZ: "Mars/Olympus"}, "IANA name"},
		{"zone in the expression", jobs.Spec{ID: "j1", Cron: "CRON_TZ=UTC 0 4 * * *"}, "in tz"},
		{"zone without cron", jobs.Spec{ID: "j1", TZ: "UTC"}, "without cron"},
		{"window without cron", jobs.Spec{ID: "j1", Window: time.Hour}, "recurring"},
		{"deadline before its time", jobs.Spec{ID: "j1", NotBefore: at(t, "2026-12-06T04:00:00Z"), Deadline: at(t, "2026-12-06T03:00:00Z")}, "could never start"},
		{"too many attempts", jobs.Spec{ID: "j1", Attempts: 1000}, "attempts 1000"},
		{"waits for itself", jobs.Spec{ID: "j1", After: []jobs.Dep{{Job: "j1"}}}, "waits for itself"},
	} {
		err := tc.spec.Check()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: err = %v, want it to say %q", tc.name, err, tc.want)
		}
	}
}

func TestDecideOnce(t *testing.T) {
	four := at(t, "2026-12-06T04:00:00Z")
	spec := jobs.Spec{ID: "update", NotBefore: four, Deadline: four.Add(2 * time.Hour)}
	for _, tc := range []struct {
		name   string
		spec   jobs.Spec
		now    time.Time
		synced bool
		action jobs.Action
		phase  jobs.Phase
		until  time.Time
	}{
		{"now, clock not synchronised", jobs.Spec{ID: "j"}, four, false, jobs.Run, jobs.PhaseRunning, time.Time{}},
		{"before its time", spec, four.Add(-time.Hour), true, jobs.Wait, jobs.PhaseWaitingTime, four},
		{"its time, clock not synchronised", spec, four, false, jobs.Wait, jobs.PhaseWaitingClock, time.Time{}},
		{"its time", spec, four, true, jobs.Run, jobs.PhaseRunning, time.Time{}},
		{"late, before its deadline", spec, four.Add(time.Hour), true, jobs.Run, jobs.PhaseRunning, time.Time{}},
		{"after its deadline", spec, four.Add(3 * time.Hour), true, jobs.End, jobs.PhaseExpired, time.Time{}},
	} {
		d := jobs.Decide(tc.spec, jobs.State{Phase: jobs.PhaseQueued}, tc.now, tc.synced, nil)
		if d.Action != tc.action || d.Phase != tc.phase || !d.Until.Equal(tc.until) {
			t.Errorf("%s: got action %d phase %s until %v (%s), want %d %s %v", tc.name, d.Action, d.Phase, d.Until, d.Why, tc.action, tc.phase, tc.until)
		}
	}
}

// A daily job at 4 am in Berlin: the zone decides the instant, across the
// change to summer time too.
func TestDecideCronTimeZone(t *testing.T) {
	spec := jobs.Spec{ID: "nightly", Cron: "0 4 * * *", TZ: "Europe/Berlin", NotBefore: at(t, "2026-03-27T00:00:00Z")}
	d := jobs.Decide(spec, jobs.State{}, at(t, "2026-03-27T01:00:00Z"), true, nil)
	if want := at(t, "2026-03-27T03:00:00Z"); d.Action != jobs.Wait || !d.Until.Equal(want) {
		t.Fatalf("winter: until %v (%s), want %v (4 am CET)", d.Until, d.Why, want)
	}
	// The night of 28-29 March 2026 moves Berlin to CEST (UTC+2).
	st := jobs.State{Last: at(t, "2026-03-28T03:00:00Z")}
	d = jobs.Decide(spec, st, at(t, "2026-03-28T12:00:00Z"), true, nil)
	if want := at(t, "2026-03-29T02:00:00Z"); !d.Until.Equal(want) {
		t.Fatalf("summer: until %v, want %v (4 am CEST)", d.Until, want)
	}
}

// The clock jumps: back, and the run that happened does not happen again;
// ahead past several runs, and the latest runs once, the others counted as
// missed.
func TestDecideClockJumps(t *testing.T) {
	spec := jobs.Spec{ID: "hourly", Cron: "0 * * * *", NotBefore: at(t, "2026-12-06T00:00:00Z")}
	ran := at(t, "2026-12-06T10:00:00Z")
	st := jobs.State{Phase: jobs.PhaseWaitingTime, Last: ran}

	// Back an hour, to 9:30: the 10:00 run is behind it, not ahead.
	d := jobs.Decide(spec, st, at(t, "2026-12-06T09:30:00Z"), true, nil)
	if want := at(t, "2026-12-06T11:00:00Z"); d.Action != jobs.Wait || !d.Until.Equal(want) {
		t.Errorf("jump back: action %d until %v (%s), want a wait until %v", d.Action, d.Until, d.Why, want)
	}
	// Ahead to 14:20: runs at 11, 12, 13 and 14 were due; 14 runs.
	d = jobs.Decide(spec, st, at(t, "2026-12-06T14:20:00Z"), true, nil)
	if want := at(t, "2026-12-06T14:00:00Z"); d.Action != jobs.Run || !d.Scheduled.Equal(want) || d.Missed != 3 {
		t.Errorf("jump ahead: action %d scheduled %v missed %d, want run at %v with 3 missed", d.Action, d.Scheduled, d.Missed, want)
	}
	// A year ahead on a minutely job: bounded work, and it still runs.
	minutely := jobs.Spec{ID: "m", Cron: "* * * * *", NotBefore: ran}
	d = jobs.Decide(minutely, jobs.State{Last: ran}, ran.AddDate(1, 0, 0), true, nil)
	if d.Action != jobs.Run || d.Missed < 9_999 {
		t.Errorf("a year ahead: action %d missed %d (%s)", d.Action, d.Missed, d.Why)
	}
}

// A run later than its window is skipped and counted; the next waits.
func TestDecideWindow(t *testing.T) {
	spec := jobs.Spec{ID: "nightly", Cron: "0 4 * * *", Window: 2 * time.Hour, NotBefore: at(t, "2026-12-05T12:00:00Z")}
	d := jobs.Decide(spec, jobs.State{}, at(t, "2026-12-06T05:00:00Z"), true, nil)
	if d.Action != jobs.Run || !d.Scheduled.Equal(at(t, "2026-12-06T04:00:00Z")) {
		t.Errorf("an hour late: action %d scheduled %v (%s), want it run", d.Action, d.Scheduled, d.Why)
	}
	d = jobs.Decide(spec, jobs.State{}, at(t, "2026-12-06T10:00:00Z"), true, nil)
	if d.Action != jobs.Wait || d.Missed != 1 || !d.Scheduled.Equal(at(t, "2026-12-06T04:00:00Z")) || !d.Until.Equal(at(t, "2026-12-07T04:00:00Z")) {
		t.Errorf("six hours late: action %d missed %d scheduled %v until %v (%s)", d.Action, d.Missed, d.Scheduled, d.Until, d.Why)
	}
}

// A recurring job with a deadline ends with its schedule.
func TestDecideCronDeadline(t *testing.T) {
	spec := jobs.Spec{ID: "d", Cron: "0 4 * * *", NotBefore: at(t, "2026-12-05T00:00:00Z"), Deadline: at(t, "2026-12-06T12:00:00Z")}
	st := jobs.State{Last: at(t, "2026-12-06T04:00:00Z")}
	if d := jobs.Decide(spec, st, at(t, "2026-12-06T13:00:00Z"), true, nil); d.Action != jobs.End || d.Phase != jobs.PhaseExpired {
		t.Errorf("action %d phase %s (%s), want it expired", d.Action, d.Phase, d.Why)
	}
}

func TestDecideDependencies(t *testing.T) {
	now := at(t, "2026-12-06T04:00:00Z")
	succeeded := jobs.Spec{ID: "b", After: []jobs.Dep{{Job: "a"}}}
	ended := jobs.Spec{ID: "c", After: []jobs.Dep{{Job: "a", Ended: true}}}
	for _, tc := range []struct {
		name  string
		spec  jobs.Spec
		a     jobs.Phase // "" for a job the device lacks
		phase jobs.Phase
	}{
		{"unknown", succeeded, "", jobs.PhaseWaitingDependency},
		{"running", succeeded, jobs.PhaseRunning, jobs.PhaseWaitingDependency},
		{"succeeded", succeeded, jobs.PhaseSucceeded, jobs.PhaseRunning},
		{"failed, needs success", succeeded, jobs.PhaseFailed, jobs.PhaseCanceled},
		{"failed, needs an end", ended, jobs.PhaseFailed, jobs.PhaseRunning},
		{"canceled, needs an end", ended, jobs.PhaseCanceled, jobs.PhaseRunning},
		{"waiting, needs an end", ended, jobs.PhaseWaitingTime, jobs.PhaseWaitingDependency},
	} {
		deps := map[string]jobs.Phase{}
		if tc.a != "" {
			deps["a"] = tc.a
		}
		if d := jobs.Decide(tc.spec, jobs.State{}, now, true, deps); d.Phase != tc.phase {
			t.Errorf("%s: phase %s (%s), want %s", tc.name, d.Phase, d.Why, tc.phase)
		}
	}
}

// A failed attempt waits its backoff, doubled at each, at most an hour.
func TestRetryBackoff(t *testing.T) {
	spec := jobs.Spec{ID: "j", Attempts: 5, Backoff: time.Minute}
	now := at(t, "2026-12-06T04:00:00Z")
	st := jobs.State{Phase: jobs.PhaseWaitingTime, Attempt: 1, RetryAt: now.Add(spec.BackoffAfter(1))}
	if d := jobs.Decide(spec, st, now, false, nil); d.Action != jobs.Wait || !d.Until.Equal(now.Add(time.Minute)) {
		t.Errorf("during the backoff: action %d until %v", d.Action, d.Until)
	}
	if d := jobs.Decide(spec, st, now.Add(time.Minute), false, nil); d.Action != jobs.Run {
		t.Errorf("after it: action %d (%s), want run", d.Action, d.Why)
	}
	for n, want := range map[int]time.Duration{1: time.Minute, 2: 2 * time.Minute, 3: 4 * time.Minute, 10: time.Hour} {
		if got := spec.BackoffAfter(n); got != want {
			t.Errorf("BackoffAfter(%d) = %v, want %v", n, got, want)
		}
	}
}

// A recurring run's failed attempt is tried again for the same scheduled
// time, not skipped for the next one; a one-shot job's retry runs past its
// deadline, as the run started before it.
func TestRetryKeepsTheRun(t *testing.T) {
	run := at(t, "2026-12-06T04:00:00Z")
	spec := jobs.Spec{ID: "j", Cron: "0 4 * * *", Attempts: 3}
	st := jobs.State{Phase: jobs.PhaseWaitingTime, Attempt: 1, Last: run, RetryAt: run.Add(10 * time.Second)}
	if d := jobs.Decide(spec, st, run.Add(11*time.Second), true, nil); d.Action != jobs.Run || !d.Scheduled.Equal(run) {
		t.Errorf("recurring retry: action %d scheduled %v (%s), want run of %v", d.Action, d.Scheduled, d.Why, run)
	}
	once := jobs.Spec{ID: "j", Deadline: run.Add(5 * time.Second), Attempts: 3}
	if d := jobs.Decide(once, st, run.Add(11*time.Second), true, nil); d.Action != jobs.Run {
		t.Errorf("retry after the deadline: action %d phase %s (%s), want run", d.Action, d.Phase, d.Why)
	}
}

// Ended and running jobs are not decided again.
func TestDecideEnded(t *testing.T) {
	for _, p := range []jobs.Phase{jobs.PhaseSucceeded, jobs.PhaseFailed, jobs.PhaseExpired, jobs.PhaseCanceled, jobs.PhaseInterrupted, jobs.PhaseRunning} {
		if d := jobs.Decide(jobs.Spec{ID: "j"}, jobs.State{Phase: p}, time.Now(), true, nil); d.Action != jobs.Wait || d.Phase != p {
			t.Errorf("%s: action %d phase %s", p, d.Action, d.Phase)
		}
	}
}
