package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/internal/testbound"
	"github.com/tern-iot/tern/internal/wasmbuild"
	"github.com/tern-iot/tern/runtime"
)

// statuses reads job id's statuses as a new operator does: another
// connection, another process for all it knows.
func statuses(t *testing.T, url, id string) map[string]fleet.JobStatusReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	op, err := fleet.DialOperator(ctx, fleet.OperatorOptions{Broker: url, Topics: relTopics, Logger: fleettest.Logger(t, "reader")})
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	got, err := op.JobStatuses(ctx, id, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]fleet.JobStatusReport{}
	for _, s := range got {
		by[s.Device] = s
	}
	return by
}

// signedJob is job id for pi-001, signed with priv (nil: unsigned).
func signedJob(t *testing.T, id string, args string, edit func(*fleet.JobEnvelope), k keys, signed bool) fleet.JobEnvelope {
	t.Helper()
	env := fleet.JobEnvelope{Format: fleet.Format, Version: 1, ID: id, Module: "relay", Job: "pulse", Args: json.RawMessage(args)}
	env.SetTopics(relTopics)
	if edit != nil {
		edit(&env)
	}
	if signed {
		if err := env.Sign(fleet.JobScope(fleet.DeviceScope("pi-001"), id), k.trusted); err != nil {
			t.Fatal(err)
		}
	}
	return env
}

// Jobs submitted while the device is switched off: the one still before
// its deadline runs when the device comes back, the one past it expires,
// an unsigned one is refused; a new operator reads each outcome from the
// broker afterwards.
func TestJobForDeviceSwitchedOff(t *testing.T) {
	forEachBroker(t, func(t *testing.T, url string) {
		k := newKeys(t)
		relay, err := wasmbuild.Cached("github.com/tern-iot/tern/plugins/relay")
		if err != nil {
			t.Fatal(err)
		}
		v := watchFleet(t, url)
		for _, env := range []fleet.JobEnvelope{
			signedJob(t, "20261206-040000-intime", `{"relay":"fan","ms":5}`, func(e *fleet.JobEnvelope) { e.Deadline = time.Now().Add(time.Hour) }, k, true),
			signedJob(t, "20261206-040000-toolate", `{"relay":"fan","ms":5}`, func(e *fleet.JobEnvelope) { e.Deadline = time.Now().Add(time.Second) }, k, true),
			signedJob(t, "20261206-040000-forged", `{"relay":"fan","ms":5}`, nil, k, false),
		} {
			if err := v.op.SubmitJob(t.Context(), fleet.DeviceScope("pi-001"), env); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(1100 * time.Millisecond) // past the second job's deadline: a wait for a wall-clock time
		relayTernd(t, url, k, relay)

		testbound.WaitFor(t, "the job in time succeeded", func() bool {
			return statuses(t, url, "20261206-040000-intime")["pi-001"].Phase == "succeeded"
		})
		late := statuses(t, url, "20261206-040000-toolate")["pi-001"]
		testbound.WaitFor(t, "the late job expired", func() bool {
			late = statuses(t, url, "20261206-040000-toolate")["pi-001"]
			return late.Phase == "expired"
		})
		if !strings.Contains(late.Why, "not started by its deadline") {
			t.Errorf("the late job: %+v", late)
		}
		e := v.event(t, runtime.EventJobRefused, "20261206-040000-forged")
		if !strings.Contains(e.Message, "tern job submit --key") {
			t.Errorf("the unsigned job's refusal: %s", e.Message)
		}
		if s, ok := statuses(t, url, "20261206-040000-forged")["pi-001"]; ok {
			t.Errorf("the unsigned job has a status: %+v", s)
		}
	})
}

// 10,000 jobs retained for one device: ternd takes what it may keep (the
// first 1,000 it gets, waiting for tomorrow), refuses the rest with a few
// events rather than one each, and goes on converging its target.
func TestTenThousandJobs(t *testing.T) {
	t.Parallel()
	url := fleettest.Embedded(t)
	k := newKeys(t)
	relay, err := wasmbuild.Cached("github.com/tern-iot/tern/plugins/relay")
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("flood").SetWriteTimeout(wait).SetMaxResumePubInFlight(256))
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	tomorrow := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	var toks []paho.Token
	for i := range 10_000 {
		id := fmt.Sprintf("20261206-000000-%06d", i)
		env := signedJob(t, id, `{"relay":"fan","ms":5}`, func(e *fleet.JobEnvelope) { e.NotBefore = tomorrow }, k, true)
		b, _ := json.Marshal(env)
		toks = append(toks, c.Publish(relTopics.DeviceJob("pi-001", id), 1, true, b))
	}
	for _, tok := range toks {
		if !tok.WaitTimeout(wait) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	c.Disconnect(100)
	fleettest.SyncRetained(t, url)

	v := watchFleet(t, url)
	relayTernd(t, url, k, relay)
	v.push(t, 1, `{"relays":{"fan":true}}`, k.trusted)
	// Bounds on a hang: on an idle machine both come within 30 s under
	// the race detector, 50 s with every core loaded by stress-ng; but
	// storing 1,000 jobs and their events is thousands of synced writes,
	// and in make test, which shares the disk with every other package's
	// stores, it took over 5 minutes twice.
	v.stateWithin(t, "converged beside 10,000 jobs", 4*testbound.Hang, func(s fleet.StateReport) bool { return s.Converged && s.TargetVersion == 1 })
	v.eventWithin(t, runtime.EventJobRefused, "holds as many jobs as it may", 4*testbound.Hang)
	accepted, refused := 0, 0
	drain := time.After(2 * time.Second)
	for done := false; !done; {
		select {
		case e := <-v.events:
			switch e.Kind {
			case runtime.EventJobAccepted:
				accepted++
			case runtime.EventJobRefused:
				refused++
			}
		case <-drain:
			done = true
		}
	}
	t.Logf("after the target: %d more job.accepted, %d more job.refused events", accepted, refused)
	if refused > 40 {
		t.Errorf("%d job.refused events: the refusals of 9,000 jobs should be summarized, not one each", refused)
	}
}
