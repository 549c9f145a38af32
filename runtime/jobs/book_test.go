package jobs_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/tern-iot/tern/runtime/jobs"
	"github.com/tern-iot/tern/runtime/store"
	"github.com/tern-iot/tern/runtime/store/backend"
)

func openStore(t *testing.T, dir string) store.Store {
	t.Helper()
	st, err := backend.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func job(id string, version uint64) jobs.Job {
	return jobs.Job{Scope: "device/pi-001/job/" + id, Version: version, Module: "updater", Job: "upgrade", Spec: jobs.Spec{ID: id}}
}

// A job offered is on the disk: it is there after a restart (a power cut
// after the Offer returned).
func TestBookKeepsJobs(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	b, err := jobs.Open(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"20261206-040000-bbbbbb", "20261206-030000-aaaaaa"} {
		if err := b.Offer(job(id, 1)); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	st = openStore(t, dir)
	defer st.Close()
	b, err = jobs.Open(st)
	if err != nil {
		t.Fatal(err)
	}
	got := b.Jobs()
	if len(got) != 2 || got[0].Spec.ID != "20261206-030000-aaaaaa" || got[0].State.Phase != jobs.PhaseQueued || got[1].Module != "updater" {
		t.Fatalf("after a restart: %+v", got)
	}
}

// Versions: a redelivery or an older version is refused; an edit before
// the start replaces the job, after it is refused; a cancel ends a job
// that has not ended.
func TestBookVersions(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	b, err := jobs.Open(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Offer(job("j1", 2)); err != nil {
		t.Fatal(err)
	}
	for _, v := range []uint64{2, 1} {
		if err := b.Offer(job("j1", v)); !errors.Is(err, jobs.ErrOlder) {
			t.Errorf("version %d after 2: %v, want ErrOlder", v, err)
		}
	}
	edit := job("j1", 3)
	edit.Job = "reboot"
	if err := b.Offer(edit); err != nil {
		t.Fatalf("an edit before the start: %v", err)
	}
	if got := b.Jobs()[0]; got.Job != "reboot" || got.Version != 3 {
		t.Errorf("after the edit: %+v", got)
	}
	if err := b.Update("device/pi-001/job/j1", 2, jobs.State{Phase: jobs.PhaseRunning}); !errors.Is(err, jobs.ErrChanged) {
		t.Errorf("a decision about version 2 after the edit to 3: %v, want ErrChanged", err)
	}
	if err := b.Update("device/pi-001/job/j1", 3, jobs.State{Phase: jobs.PhaseRunning}); err != nil {
		t.Fatal(err)
	}
	if err := b.Offer(job("j1", 4)); !errors.Is(err, jobs.ErrStarted) {
		t.Errorf("an edit of a running job: %v, want ErrStarted", err)
	}
	cancel := job("j1", 5)
	cancel.Canceled = true
	if err := b.Offer(cancel); !errors.Is(err, jobs.ErrStarted) {
		t.Errorf("a cancel of a running job: %v, want ErrStarted", err)
	}

	if err := b.Offer(job("j2", 1)); err != nil {
		t.Fatal(err)
	}
	cancel = job("j2", 2)
	cancel.Canceled = true
	if err := b.Offer(cancel); err != nil {
		t.Fatal(err)
	}
	for _, j := range b.Jobs() {
		if j.Spec.ID == "j2" && j.State.Phase != jobs.PhaseCanceled {
			t.Errorf("after the cancel: %s", j.State.Phase)
		}
	}
}

// A job running when the device stopped is interrupted, and queued again
// only if it said it may be.
func TestBookInterrupted(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	b, err := jobs.Open(st)
	if err != nil {
		t.Fatal(err)
	}
	retry := job("retry", 1)
	retry.RetryInterrupted = true
	for _, j := range []jobs.Job{job("once", 1), retry} {
		if err := b.Offer(j); err != nil {
			t.Fatal(err)
		}
		if err := b.Update(j.Scope, j.Version, jobs.State{Phase: jobs.PhaseRunning, Attempt: 1}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close() // the power goes

	st = openStore(t, dir)
	defer st.Close()
	if b, err = jobs.Open(st); err != nil {
		t.Fatal(err)
	}
	for _, j := range b.Jobs() {
		want := map[string]jobs.Phase{"once": jobs.PhaseInterrupted, "retry": jobs.PhaseQueued}[j.Spec.ID]
		if j.State.Phase != want || j.State.Attempt != 1 {
			t.Errorf("%s after the power cut: %s attempt %d, want %s attempt 1", j.Spec.ID, j.State.Phase, j.State.Attempt, want)
		}
	}
}

// The book holds at most MaxJobs: a new job then makes it forget the
// oldest ended job, and is refused when none has ended. A forgotten job's
// retained message, which comes again with every connection, is refused
// as ended, also after a restart: it never runs twice.
func TestBookBounded(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	b, err := jobs.Open(st)
	if err != nil {
		t.Fatal(err)
	}
	for i := range jobs.MaxJobs {
		if err := b.Offer(job(fmt.Sprintf("j%05d", i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Offer(job("one-more", 1)); !errors.Is(err, jobs.ErrFull) {
		t.Fatalf("job %d with none ended: %v, want ErrFull", jobs.MaxJobs+1, err)
	}
	older, old := "device/pi-001/job/j00007", "device/pi-001/job/j00009"
	if err := b.Forget(old); err == nil {
		t.Error("forgot a job that has not ended")
	}
	for _, scope := range []string{old, older} {
		if err := b.Update(scope, 1, jobs.State{Phase: jobs.PhaseSucceeded}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Offer(job("one-more", 1)); err != nil {
		t.Fatalf("with two ended: %v", err)
	}
	if n := len(b.Jobs()); n != jobs.MaxJobs {
		t.Errorf("%d jobs held, want %d", n, jobs.MaxJobs)
	}
	for _, j := range b.Jobs() {
		if j.Scope == older {
			t.Errorf("the oldest ended job (%s) is still held; %s should be the one forgotten", older, old)
		}
	}
	st.Close()

	st = openStore(t, dir)
	defer st.Close()
	if b, err = jobs.Open(st); err != nil {
		t.Fatal(err)
	}
	if err := b.Offer(job("j00007", 1)); !errors.Is(err, jobs.ErrOlder) {
		t.Errorf("the forgotten job redelivered: %v, want ErrOlder", err)
	}
	if err := b.Offer(job("j00007", 2)); !errors.Is(err, jobs.ErrStarted) {
		t.Errorf("a new version of the forgotten job: %v, want ErrStarted", err)
	}
}
