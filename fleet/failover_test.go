package fleet_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/runtime/api"
)

// A device given the nodes of a broker fails over: when the node it is on
// dies, it reconnects to the next and reports there; when that one dies
// too, it goes back round the list. The two Mosquittos share nothing, so
// each report can only be where the device was connected.
func TestDeviceFailsOver(t *testing.T) {
	t.Parallel()
	a, b := fleettest.RestartableMosquitto(t), fleettest.RestartableMosquitto(t)
	opts := testOptions("", "pi-042")
	opts.Brokers = []string{a.URL, b.URL}
	d := newDevice(t, opts)
	run(t, d)
	waitConnected(t, d)

	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	report := func(v uint64) {
		t.Helper()
		st := api.Status{Time: time.Now().UTC(), TargetVersion: v, Phase: api.PhaseIdle, Converged: true}
		if err := d.PublishState(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	// reportedOn waits for the state report of version v on the broker at
	// url (an older retained one may come first).
	reportedOn := func(url string, v uint64) {
		t.Helper()
		op := dialOperator(t, url)
		states, err := op.WatchStates(ctx, "pi-042")
		if err != nil {
			t.Fatal(err)
		}
		for {
			if got := recv(t, states, "the state report on "+url); got.TargetVersion == v {
				return
			}
		}
	}

	report(1)
	reportedOn(a.URL, 1)

	a.Stop()
	report(2)
	reportedOn(b.URL, 2)

	a.Start()
	b.Stop()
	report(3)
	reportedOn(a.URL, 3)
}

func TestBrokersOption(t *testing.T) {
	for _, tc := range []struct {
		one  string
		list []string
		want string
	}{
		{"tcp://a:1883", []string{"tcp://b:1883"}, "both Broker and Brokers are set"},
		{"", []string{"tcp://a:1883", "tcp://a"}, "broker tcp://a:1883 is listed twice"},
		{"", []string{"tcp://a:1883", "b:1883"}, "broker 2 of 2: fleet: broker address \"b:1883\""},
		{"", nil, "no broker address"},
	} {
		opts := testOptions(tc.one, "pi-001")
		opts.Brokers = tc.list
		opts.Store = fleettest.Store(t)
		if _, err := fleet.NewDevice(opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Broker %q, Brokers %q: err = %v, want it to say %q", tc.one, tc.list, err, tc.want)
		}
	}
}
