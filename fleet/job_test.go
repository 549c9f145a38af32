package fleet_test

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/internal/testbound"
	"github.com/tern-iot/tern/runtime/api"
)

func testJob(t *testing.T) fleet.JobEnvelope {
	t.Helper()
	env := fleet.JobEnvelope{
		Format: fleet.Format, Version: 1, ID: "20261206-030000-k3v9qa",
		Module: "updater", Job: "upgrade", Args: json.RawMessage(`{"packages":"all"}`),
		NotBefore: time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC), Deadline: time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC),
		Attempts: 3, Backoff: fleet.Duration(30 * time.Second),
		After: []fleet.JobDep{{Job: "20261205-220000-aaaaaa", When: "ended"}},
	}
	env.SetTopics(topics)
	return env
}

// A signed job goes through JSON and verifies for its scope and no other;
// any change to what it says breaks the signature.
func TestJobSignVerify(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	trust := signing.NewTrust(pub)
	env := testJob(t)
	scope := fleet.JobScope(fleet.DeviceScope("pi-001"), env.ID)
	if err := env.Sign(scope, priv); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	got, err := fleet.ParseJobEnvelope(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(scope, trust); err != nil {
		t.Fatalf("verify: %v", err)
	}
	spec := got.Spec()
	if spec.ID != env.ID || spec.Attempts != 3 || spec.Backoff != 30*time.Second || len(spec.After) != 1 || !spec.After[0].Ended {
		t.Errorf("spec: %+v", spec)
	}

	other := fleet.JobScope(fleet.DeviceScope("pi-002"), env.ID)
	if err := got.Verify(other, trust); !errors.Is(err, fleet.ErrWrongScope) {
		t.Errorf("another device's topic: %v, want ErrWrongScope", err)
	}
	for name, tamper := range map[string]func(*fleet.JobEnvelope){
		"args":     func(e *fleet.JobEnvelope) { e.Args = json.RawMessage(`{"packages":"none"}`) },
		"time":     func(e *fleet.JobEnvelope) { e.NotBefore = e.NotBefore.Add(time.Hour) },
		"job":      func(e *fleet.JobEnvelope) { e.Job = "reboot" },
		"canceled": func(e *fleet.JobEnvelope) { e.Canceled = true },
		"version":  func(e *fleet.JobEnvelope) { e.Version = 2 },
		"fleet":    func(e *fleet.JobEnvelope) { e.Fleet = "other" },
		"after":    func(e *fleet.JobEnvelope) { e.After = nil },
	} {
		e := got
		tamper(&e)
		if err := e.Verify(scope, trust); !errors.Is(err, signing.ErrBadSig) {
			t.Errorf("changed %s: %v, want ErrBadSig", name, err)
		}
	}
}

// Hostile or mistaken jobs are refused when parsed, saying what is wrong.
func TestParseJobEnvelopeRefuses(t *testing.T) {
	base := testJob(t)
	for name, tc := range map[string]struct {
		change func(*fleet.JobEnvelope)
		want   string
	}{
		"no id":          {func(e *fleet.JobEnvelope) { e.ID = "" }, `bad "id"`},
		"id with slash":  {func(e *fleet.JobEnvelope) { e.ID = "a/b" }, `bad "id"`},
		"no module":      {func(e *fleet.JobEnvelope) { e.Module = "" }, `bad "module"`},
		"args not obj":   {func(e *fleet.JobEnvelope) { e.Args = json.RawMessage(`[1,2]`) }, `"args" must be a JSON object`},
		"never fires":    {func(e *fleet.JobEnvelope) { e.Cron = "0 0 31 2 *" }, "never fires"},
		"unknown zone":   {func(e *fleet.JobEnvelope) { e.Cron, e.TZ = "0 4 * * *", "Nowhere/Land" }, "IANA"},
		"bad when":       {func(e *fleet.JobEnvelope) { e.After[0].When = "maybe" }, `"when" is "maybe"`},
		"waits for self": {func(e *fleet.JobEnvelope) { e.After[0].Job = e.ID }, "waits for itself"},
		"bad scope":      {func(e *fleet.JobEnvelope) { e.SignedScope = "device/pi-001/job/other" }, `bad "scope"`},
		"version 0":      {func(e *fleet.JobEnvelope) { e.Version = 0 }, "version"},
	} {
		e := base
		e.After = slices.Clone(base.After)
		tc.change(&e)
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fleet.ParseJobEnvelope(b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want it to say %q", name, err, tc.want)
		}
	}
	// Arguments over the bound: refused before anything is stored.
	big := base
	big.Args = json.RawMessage(`{"x":"` + strings.Repeat("a", fleet.MaxJobArgs) + `"}`)
	b, _ := json.Marshal(big)
	if _, err := fleet.ParseJobEnvelope(b); err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Errorf("big args: %v", err)
	}
}

// Job ids sort by the time they were made, are topic levels, and differ.
func TestNewJobID(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	a, b, c := fleet.NewJobID(t0), fleet.NewJobID(t0), fleet.NewJobID(t0.Add(time.Second))
	for _, id := range []string{a, b, c} {
		if err := fleet.ValidID(id); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	if a == b {
		t.Errorf("two ids made the same second are the same: %s", a)
	}
	if !(a < c && b < c) || !strings.HasPrefix(a, "20261206-030000-") {
		t.Errorf("ids %s %s %s do not sort by time", a, b, c)
	}
}

func TestJobTopics(t *testing.T) {
	for got, want := range map[string]string{
		topics.DeviceJob("pi-001", "j1"): "tern/demo/devices/pi-001/jobs/j1",
		topics.GroupJob("heaters", "j1"): "tern/demo/groups/heaters/jobs/j1",
		topics.JobStatus("pi-001", "j1"): "tern/demo/devices/pi-001/jobstatus/j1",
	} {
		if got != want {
			t.Errorf("topic %s, want %s", got, want)
		}
	}
}

// takeJobs waits for the device's jobs until it holds every id in want at
// its version, and returns what it took, by scope.
func takeJobs(t *testing.T, d *fleet.Device, want map[string]uint64) map[string]fleet.ScopedJob {
	t.Helper()
	got := map[string]fleet.ScopedJob{}
	timeout := time.After(wait)
	for {
		for _, j := range d.TakeJobs() {
			if held, ok := got[j.Scope]; !ok || held.Version < j.Version {
				got[j.Scope] = j
			}
		}
		done := true
		for scope, v := range want {
			if got[scope].Version != v {
				done = false
			}
		}
		if done {
			return got
		}
		select {
		case <-d.JobsWaiting():
		case <-timeout:
			t.Fatalf("jobs: got %v, want versions %v", got, want)
		}
	}
}

// Jobs submitted while a device is off reach it when it comes back, its
// own and its groups', with the scope their signature must verify for;
// an edit reaches it live; a job on another id's topic is refused.
func TestJobsReachDevice(t *testing.T) {
	forEachBroker(t, func(t *testing.T, url string) {
		op := dialOperator(t, url)
		own, group := testJob(t), testJob(t)
		own.ID, group.ID = "20261206-030000-aaaaaa", "20261206-030000-bbbbbb"
		own.After, group.After = nil, nil
		if err := op.SubmitJob(t.Context(), fleet.DeviceScope("pi-005"), own); err != nil {
			t.Fatal(err)
		}
		if err := op.SubmitJob(t.Context(), fleet.GroupScope("heaters"), group); err != nil {
			t.Fatal(err)
		}
		fleettest.SyncRetained(t, url)

		opts := testOptions(url, "pi-005")
		opts.Groups = []string{"heaters"}
		d := newDevice(t, opts)
		run(t, d)
		ownScope := fleet.JobScope(fleet.DeviceScope("pi-005"), own.ID)
		groupScope := fleet.JobScope(fleet.GroupScope("heaters"), group.ID)
		got := takeJobs(t, d, map[string]uint64{ownScope: 1, groupScope: 1})
		if j := got[ownScope]; j.Module != "updater" || j.Job != "upgrade" || string(j.Args) != `{"packages":"all"}` {
			t.Errorf("own job: %+v", j)
		}

		own.Version, own.Canceled = 2, true
		if err := op.SubmitJob(t.Context(), fleet.DeviceScope("pi-005"), own); err != nil {
			t.Fatal(err)
		}
		if j := takeJobs(t, d, map[string]uint64{ownScope: 2})[ownScope]; !j.Canceled {
			t.Errorf("the edit: %+v, want it canceled", j)
		}

		// A job published on the topic of another id: refused.
		b, _ := json.Marshal(group)
		publishRaw(t, url, topics.DeviceJob("pi-005", "20261206-030000-cccccc"), string(b), true)
		r := recv(t, d.Refusals(), "the refusal of a job on another id's topic")
		if !strings.Contains(r.Err.Error(), "the topic of another job id") {
			t.Errorf("refusal: %v", r.Err)
		}
	})
}

// A device's job statuses are retained per job, the latest of each, and
// the operator reads them (and the jobs retained) the next time it asks;
// a status too large for a report goes out without its result.
func TestJobStatusesRetained(t *testing.T) {
	forEachBroker(t, func(t *testing.T, url string) {
		opts := testOptions(url, "pi-006")
		opts.MaxReport = 16 << 10
		d := newDevice(t, opts)
		run(t, d)
		id := "20261206-030000-dddddd"
		scope := fleet.JobScope(fleet.DeviceScope("pi-006"), id)
		for _, phase := range []string{"running", "succeeded"} {
			if err := d.PublishJobStatus(t.Context(), api.JobStatus{Time: time.Now(), ID: id, Scope: scope, Version: 1, Module: "relay", Command: "pulse", Phase: phase, Result: json.RawMessage(`{"ok":true}`)}); err != nil {
				t.Fatal(err)
			}
		}
		big := "20261206-030000-eeeeee"
		if err := d.PublishJobStatus(t.Context(), api.JobStatus{Time: time.Now(), ID: big, Scope: scope, Version: 1, Phase: "succeeded", Result: json.RawMessage(`"` + strings.Repeat("x", 20<<10) + `"`)}); err != nil {
			t.Fatal(err)
		}
		op := dialOperator(t, url)
		var got []fleet.JobStatusReport
		testbound.WaitFor(t, "the succeeded status retained", func() bool {
			fleettest.SyncRetained(t, url)
			var err error
			got, err = op.JobStatuses(t.Context(), id, 300*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			return len(got) == 1 && got[0].Phase == "succeeded"
		})
		if r := got[0]; r.Device != "pi-006" || string(r.Result) != `{"ok":true}` || r.Scope != scope {
			t.Errorf("status: %+v", r)
		}
		testbound.WaitFor(t, "the large status retained", func() bool {
			fleettest.SyncRetained(t, url)
			got, _ = op.JobStatuses(t.Context(), big, 300*time.Millisecond)
			return len(got) == 1
		})
		if r := got[0]; !r.Truncated || r.Result != nil || r.Phase != "succeeded" {
			t.Errorf("large status: truncated %v, result %d bytes, phase %s; want it cut, the phase kept", r.Truncated, len(r.Result), r.Phase)
		}

		job := testJob(t)
		job.ID, job.After = id, nil
		if err := op.SubmitJob(t.Context(), fleet.DeviceScope("pi-006"), job); err != nil {
			t.Fatal(err)
		}
		fleettest.SyncRetained(t, url)
		js, err := op.RetainedJobs(t.Context(), id, 300*time.Millisecond)
		if err != nil || len(js) != 1 || js[0].Scope != scope || js[0].Module != "updater" {
			t.Errorf("RetainedJobs(%s): %+v, %v", id, js, err)
		}
	})
}

// Under the shipped Mosquitto ACL a device reads its own jobs.
func TestShippedACLJobs(t *testing.T) {
	t.Parallel()
	acl, err := filepath.Abs(filepath.Join("..", "firmware", "mosquitto", "acl.conf"))
	if err != nil {
		t.Fatal(err)
	}
	url := fleettest.MosquittoWithACL(t, map[string]string{"tern-operator": "ops", "pi-001": "one"}, acl)
	op, err := fleet.DialOperator(t.Context(), fleet.OperatorOptions{Broker: url, Topics: topics, Username: "tern-operator", Password: "ops", ConnectTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	job := testJob(t)
	job.After = nil
	if err := op.SubmitJob(t.Context(), fleet.DeviceScope("pi-001"), job); err != nil {
		t.Fatal(err)
	}
	opts := testOptions(url, "pi-001")
	opts.Username, opts.Password = "pi-001", "one"
	d := newDevice(t, opts)
	run(t, d)
	takeJobs(t, d, map[string]uint64{fleet.JobScope(fleet.DeviceScope("pi-001"), job.ID): 1})
}
