package fleet_test

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/signing"
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
