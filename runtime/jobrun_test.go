package runtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/internal/testbound"
	"github.com/tern-iot/tern/internal/wasmbuild"
	"github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/runtime/jobs"
	"github.com/tern-iot/tern/runtime/store/backend"
)

// jobRecorder is a recorder that also takes job statuses.
type jobRecorder struct {
	recorder
	jmu      sync.Mutex
	statuses map[string][]runtime.JobStatus // by job id, in order
	lastOnly bool                           // keep only each job's latest status (and no events)
}

func (r *jobRecorder) PublishJobStatus(_ context.Context, s runtime.JobStatus) error {
	r.jmu.Lock()
	defer r.jmu.Unlock()
	if r.statuses == nil {
		r.statuses = map[string][]runtime.JobStatus{}
	}
	if r.lastOnly {
		r.statuses[s.ID] = append(r.statuses[s.ID][:0], s)
		return nil
	}
	r.statuses[s.ID] = append(r.statuses[s.ID], s)
	return nil
}

func (r *jobRecorder) PublishEvent(ctx context.Context, e runtime.Event) error {
	if r.lastOnly {
		return nil
	}
	return r.recorder.PublishEvent(ctx, e)
}

// last is the latest status of job id.
func (r *jobRecorder) last(id string) runtime.JobStatus {
	r.jmu.Lock()
	defer r.jmu.Unlock()
	s := r.statuses[id]
	if len(s) == 0 {
		return runtime.JobStatus{}
	}
	return s[len(s)-1]
}

// phases lists the phases job id was reported in, repeats folded.
func (r *jobRecorder) phases(id string) []string {
	r.jmu.Lock()
	defer r.jmu.Unlock()
	var out []string
	for _, s := range r.statuses[id] {
		if len(out) == 0 || out[len(out)-1] != s.Phase {
			out = append(out, s.Phase)
		}
	}
	return out
}

// fakeClock is a wall clock the test sets.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func (c *fakeClock) add(d time.Duration) { c.ns.Add(int64(d)) }

func pulseJob(id string, version uint64, args string) jobs.Job {
	return jobs.Job{Scope: "device/pi-001/job/" + id, Version: version, Module: "relay", Job: "pulse", Args: json.RawMessage(args), Spec: jobs.Spec{ID: id}}
}

// A job runs the module's command with its arguments, through the
// module's grants, and its status ends succeeded with the command's
// result; a command that fails is tried as many times as the job says,
// then fails with the module's error; one the module lacks fails saying
// which commands it has.
func TestJobRuns(t *testing.T) {
	r := newRig(t)
	rep := &jobRecorder{}
	a, _ := r.start(t, rep, true)

	if err := a.OfferJob(pulseJob("j1", 1, `{"relay":"heater","ms":10}`)); err != nil {
		t.Fatal(err)
	}
	testbound.WaitFor(t, "j1 succeeded", func() bool { return rep.last("j1").Phase == "succeeded" })
	s := rep.last("j1")
	if string(s.Result) != `{"line":"GPIO17","ms":10,"relay":"heater"}` || s.Attempt != 1 || s.Started.IsZero() || s.Ended.Before(s.Started) {
		t.Errorf("j1's status: %+v", s)
	}
	if got := strings.Join(rep.phases("j1"), " "); got != "running succeeded" {
		t.Errorf("j1 went %s, want running succeeded", got)
	}
	for _, k := range []runtime.EventKind{runtime.EventJobAccepted, runtime.EventJobStarted, runtime.EventJobSucceeded} {
		if _, ok := rep.find(k, ""); !ok {
			t.Errorf("no %s event", k)
		}
	}
	if level(r.gpio, "GPIO17") != gpio.Low {
		t.Error("the heater stayed on after its pulse")
	}

	// The relay on GPIO22 is configured but not granted: every attempt
	// fails with the host's refusal.
	lamp := pulseJob("j2", 1, `{"relay":"lamp","ms":10}`)
	lamp.Spec.Attempts, lamp.Spec.Backoff = 2, 10*time.Millisecond
	if err := a.OfferJob(lamp); err != nil {
		t.Fatal(err)
	}
	testbound.WaitFor(t, "j2 failed", func() bool { return rep.last("j2").Phase == "failed" })
	if s := rep.last("j2"); s.Attempt != 2 || !strings.Contains(s.Error, "not granted") {
		t.Errorf("j2's status: attempt %d, error %q; want 2 attempts and the grant refused", s.Attempt, s.Error)
	}

	missing := pulseJob("j3", 1, `{}`)
	missing.Job = "reboot"
	if err := a.OfferJob(missing); err != nil {
		t.Fatal(err)
	}
	testbound.WaitFor(t, "j3 failed", func() bool { return rep.last("j3").Phase == "failed" })
	if s := rep.last("j3"); !strings.Contains(s.Error, `no command "reboot"; its commands: [pulse]`) {
		t.Errorf("j3's error: %q", s.Error)
	}

	// Redelivery of a version held is refused quietly; an edit of an
	// ended job loudly.
	if err := a.OfferJob(pulseJob("j1", 1, `{}`)); !errors.Is(err, jobs.ErrOlder) {
		t.Errorf("j1 redelivered: %v, want ErrOlder", err)
	}
	if err := a.OfferJob(pulseJob("j1", 2, `{}`)); !errors.Is(err, jobs.ErrStarted) {
		t.Errorf("j1 edited after it ended: %v, want ErrStarted", err)
	}
	if _, ok := rep.find(runtime.EventJobRefused, "started already"); !ok {
		t.Error("no job.refused event for the late edit")
	}
}

// A job waits for its time by the device's wall clock, and for the clock
// to be synchronised first; a job after another waits for it, and is
// canceled when the other ends badly; an edit before the time replaces
// the job, and a cancel ends it.
func TestJobSchedule(t *testing.T) {
	r := newRig(t)
	rep := &jobRecorder{}
	clock := &fakeClock{}
	clock.set(time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC))
	var synced atomic.Bool
	a, _ := r.startWith(t, rep, func(o *runtime.Options) {
		o.Clock = clock.now
		o.ClockSynced = synced.Load
	})

	at4 := pulseJob("at4", 1, `{"relay":"heater","ms":1}`)
	at4.Spec.NotBefore = time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)
	after := pulseJob("after", 1, `{"relay":"fan","ms":1}`)
	after.Spec.After = []jobs.Dep{{Job: "at4"}}
	afterBad := pulseJob("after-bad", 1, `{"relay":"fan","ms":1}`)
	afterBad.Spec.After = []jobs.Dep{{Job: "bad"}}
	bad := pulseJob("bad", 1, `{"relay":"nothing","ms":1}`)
	edited := pulseJob("edited", 1, `{"relay":"heater","ms":1}`)
	edited.Spec.NotBefore = at4.Spec.NotBefore
	canceled := pulseJob("canceled", 1, `{"relay":"heater","ms":1}`)
	canceled.Spec.NotBefore = at4.Spec.NotBefore
	for _, j := range []jobs.Job{at4, after, afterBad, bad, edited, canceled} {
		if err := a.OfferJob(j); err != nil {
			t.Fatal(err)
		}
	}
	testbound.WaitFor(t, "at4 waiting for the clock", func() bool { return rep.last("at4").Phase == "waiting_clock" })
	testbound.WaitFor(t, "after-bad canceled", func() bool { return rep.last("after-bad").Phase == "canceled" })
	if s := rep.last("after"); s.Phase != "waiting_dependency" {
		t.Errorf("after: %s (%s), want waiting_dependency", s.Phase, s.Why)
	}
	synced.Store(true)
	testbound.WaitFor(t, "at4 waiting for its time", func() bool { return rep.last("at4").Phase == "waiting" })
	if s := rep.last("at4"); !s.Next.Equal(at4.Spec.NotBefore) {
		t.Errorf("at4 next %v, want %v", s.Next, at4.Spec.NotBefore)
	}
	edit := edited
	edit.Version, edit.Args = 2, json.RawMessage(`{"relay":"fan","ms":2}`)
	cancel := canceled
	cancel.Version, cancel.Canceled = 2, true
	for _, j := range []jobs.Job{edit, cancel} {
		if err := a.OfferJob(j); err != nil {
			t.Fatal(err)
		}
	}
	clock.add(time.Hour)
	testbound.WaitFor(t, "after succeeded", func() bool { return rep.last("after").Phase == "succeeded" })
	testbound.WaitFor(t, "edited succeeded", func() bool { return rep.last("edited").Phase == "succeeded" })
	if s := rep.last("edited"); s.Version != 2 || !strings.Contains(string(s.Result), `"ms":2`) {
		t.Errorf("edited ran %+v, want version 2's arguments", s)
	}
	if s := rep.last("canceled"); s.Phase != "canceled" || !s.Started.IsZero() {
		t.Errorf("canceled: %+v", s)
	}
	if s := rep.last("at4"); s.Phase != "succeeded" || s.Started.Before(at4.Spec.NotBefore) {
		t.Errorf("at4: %+v", s)
	}
}

// A job running when the device stops is interrupted: reported so at the
// next start, and not run again, unless it said it may be. Every start
// publishes every job's status again.
func TestJobInterrupted(t *testing.T) {
	r := newRig(t)
	rep := &jobRecorder{}
	a, stop := r.start(t, rep, true)
	long := pulseJob("long", 1, `{"relay":"heater","ms":3000}`)
	again := pulseJob("again", 1, `{"relay":"fan","ms":3000}`)
	again.Spec.After = []jobs.Dep{{Job: "long", Ended: true}}
	again.RetryInterrupted = true
	for _, j := range []jobs.Job{long, again} {
		if err := a.OfferJob(j); err != nil {
			t.Fatal(err)
		}
	}
	testbound.WaitFor(t, "long running", func() bool { return rep.last("long").Phase == "running" })
	stop() // the power goes while it runs

	rep2 := &jobRecorder{}
	_, stop2 := r.start(t, rep2, false)
	testbound.WaitFor(t, "long interrupted", func() bool { return rep2.last("long").Phase == "interrupted" })
	if _, ok := rep2.find(runtime.EventJobInterrupted, "not run again"); !ok {
		t.Error("no job.interrupted event")
	}
	// again ran after long ended (interrupted: ended), and is running.
	testbound.WaitFor(t, "again running", func() bool { return rep2.last("again").Phase == "running" })
	stop2()
	rep3 := &jobRecorder{}
	r.start(t, rep3, false)
	testbound.WaitFor(t, "again ran again", func() bool { return rep3.last("again").Phase == "running" && rep3.last("again").Attempt == 2 })
	// A start publishes every status again, unchanged ones too: one
	// that changed before a stop may never have reached the broker.
	testbound.WaitFor(t, "long's status again", func() bool { return rep3.last("long").Phase == "interrupted" })
}

// startCommands runs an agent with the commands test module and no
// hardware.
func startCommands(t testing.TB, rep runtime.Reporter, edit func(*runtime.Options)) *runtime.Agent {
	t.Helper()
	wasm, err := wasmbuild.Cached("github.com/tern-iot/tern/runtime/internal/wasmtest/commands")
	if err != nil {
		t.Fatal(err)
	}
	st, err := backend.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	opts := runtime.Options{Store: st, CacheDir: sharedCache, Reporter: rep, Logger: testLogger(t),
		Modules: []runtime.ModuleSpec{{Name: "commands", Wasm: wasm}}}
	if edit != nil {
		edit(&opts)
	}
	a, _ := runAgent(t, opts)
	return a
}

func commandJob(id, command, args string) jobs.Job {
	return jobs.Job{Scope: "device/pi-001/job/" + id, Version: 1, Module: "commands", Job: command, Args: json.RawMessage(args), Spec: jobs.Spec{ID: id}}
}

// What a fleet may send that a device must survive: a result over the
// bound fails the run saying so; a module's error is the job's; a module
// the device lacks fails the job saying which; a schedule that never
// fires is refused; 1,100 jobs waiting for tomorrow fill the book at
// 1,000 and the rest are refused with at most a burst of events, not one
// each.
func TestJobHostile(t *testing.T) {
	rep := &jobRecorder{}
	a := startCommands(t, rep, nil)
	for _, j := range []jobs.Job{
		commandJob("echo", "echo", `{"a":[1,2,{"b":null}]}`),
		commandJob("small", "big", `{"n":1000}`),
		commandJob("large", "big", `{"n":70000}`),
		commandJob("fails", "fail", `{"why":"disk full"}`),
		{Scope: "device/pi-001/job/nomod", Version: 1, Module: "nosuch", Job: "x", Spec: jobs.Spec{ID: "nomod"}},
	} {
		if err := a.OfferJob(j); err != nil {
			t.Fatal(err)
		}
	}
	for id, want := range map[string]string{"echo": "succeeded", "small": "succeeded", "large": "failed", "fails": "failed", "nomod": "failed"} {
		testbound.WaitFor(t, id+" "+want, func() bool { return rep.last(id).Phase == want })
	}
	if s := rep.last("echo"); string(s.Result) != `{"args":{"a":[1,2,{"b":null}]},"mode":null}` {
		t.Errorf("echo's result: %s", s.Result)
	}
	if s := rep.last("small"); len(s.Result) != 1002 {
		t.Errorf("small's result: %d bytes, want 1002", len(s.Result))
	}
	for id, want := range map[string]string{
		"large": "returned a result of 70002 bytes, over the bound of 65536",
		"fails": "disk full",
		"nomod": "module nosuch is not on this device",
	} {
		if s := rep.last(id); !strings.Contains(s.Error, want) || s.Result != nil {
			t.Errorf("%s's error %q, result %s; want %q", id, s.Error, s.Result, want)
		}
	}

	never := commandJob("never", "echo", `{}`)
	never.Spec.Cron = "0 0 30 2 *" // 30 February
	if err := a.OfferJob(never); err == nil {
		t.Error("a schedule that never fires was accepted")
	}
	if e, ok := rep.find(runtime.EventJobRefused, "never"); !ok {
		t.Error("no job.refused event for the schedule that never fires")
	} else {
		t.Logf("refused: %s", e.Message)
	}

	// The five that ended make room first (forgotten, oldest first).
	tomorrow := time.Now().Add(24 * time.Hour)
	full := 0
	for i := range 1100 {
		j := commandJob(fmt.Sprintf("t%04d", i), "echo", `{}`)
		j.Spec.NotBefore = tomorrow
		switch err := a.OfferJob(j); {
		case errors.Is(err, jobs.ErrFull):
			full++
		case err != nil:
			t.Fatal(err)
		}
	}
	if n := len(a.Jobs()); n != jobs.MaxJobs || full != 1100-jobs.MaxJobs {
		t.Errorf("holding %d jobs after 1,100 more, %d refused full; want %d held, %d refused", n, full, jobs.MaxJobs, 1100-jobs.MaxJobs)
	}
	if first := a.Jobs()[0].Spec.ID; first != "t0000" {
		t.Errorf("the first job held is %s; the ended ones should have been forgotten to make room", first)
	}
	refusals := 0
	rep.mu.Lock()
	for _, e := range rep.events {
		if e.Kind == runtime.EventJobRefused && strings.Contains(e.Message, "holds as many jobs") {
			refusals++
		}
	}
	rep.mu.Unlock()
	if refusals == 0 || refusals > 20 {
		t.Errorf("%d job.refused events for 100 jobs refused for a full book; want some, at most 20 (a burst, then a summary a minute)", refusals)
	}
}
