package fleet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/runtime/api"
)

// On a three-node NATS cluster (the embedded broker, the MQTT streams on
// every node), the device on node 2 and the operator on node 1: a target
// pushed on node 1 reaches the device, and its state and events reach the
// operator. Then node 2 dies: the device fails over to node 3, the target
// pushed meanwhile reaches it there, and its events go on from where
// they were, none lost, none twice.
func TestCluster(t *testing.T) {
	t.Parallel()
	urls, stop := fleettest.EmbeddedCluster(t, 3)
	op := dialOperator(t, urls[0])
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	events, err := op.WatchEvents(ctx, "pi-070")
	if err != nil {
		t.Fatal(err)
	}
	states, err := op.WatchStates(ctx, "pi-070")
	if err != nil {
		t.Fatal(err)
	}
	opts := testOptions("", "pi-070")
	opts.Brokers = []string{urls[1], urls[2], urls[0]}
	d := newDevice(t, opts)
	run(t, d)
	waitConnected(t, d)

	step := func(v uint64) {
		t.Helper()
		if err := op.PushTarget(ctx, "pi-070", fleet.TargetEnvelope{Version: v, Target: json.RawMessage(fmt.Sprintf(`{"step":%d}`, v))}); err != nil {
			t.Fatal(err)
		}
		for {
			if got := recv(t, d.Targets(), fmt.Sprintf("target %d", v)); got.Version == v {
				break
			}
		}
		ev := api.Event{ID: fmt.Sprintf("e-%d", v), Time: time.Now().UTC(), Kind: api.EventConverged, TargetVersion: v}
		if err := d.PublishEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
		if err := d.PublishState(ctx, api.Status{Time: time.Now().UTC(), TargetVersion: v, Phase: api.PhaseIdle, Converged: true}); err != nil {
			t.Fatal(err)
		}
		for {
			if got := recv(t, states, fmt.Sprintf("state %d", v)); got.TargetVersion == v {
				break
			}
		}
	}
	step(1)
	stop(1) // node 2, the device's
	step(2)

	// Events: 1 then 2, each once (a repeat of one the broker had but did
	// not acknowledge before the node died is allowed, and dropped by
	// seq, as a consumer does).
	var seqs []uint64
	for len(seqs) < 2 {
		got := recv(t, events, "the device's events")
		if len(seqs) > 0 && got.Seq <= seqs[len(seqs)-1] {
			continue
		}
		if want := uint64(len(seqs) + 1); got.Seq != want || got.TargetVersion != want {
			t.Fatalf("event seq %d for target %d, want seq %d for target %d", got.Seq, got.TargetVersion, want, want)
		}
		seqs = append(seqs, got.Seq)
	}
}

// A device that missed a target (its broker served the retained message
// late, as a NATS node does while its index lags, for seconds after a node
// of its cluster died) asks for its targets again soon after connecting
// and then every TargetRefresh, and gets it without a new connection or a
// new push.
func TestTargetRefresh(t *testing.T) {
	forEachBroker(t, func(t *testing.T, url string) {
		op := dialOperator(t, url)
		opts := testOptions(url, "pi-071")
		opts.Groups = []string{"north"}
		opts.TargetRefresh = 500 * time.Millisecond
		d := newDevice(t, fleet.WithLostTargets(opts, 2))
		run(t, d)
		waitConnected(t, d)
		connects, _ := d.Connection()
		if err := op.PushTarget(t.Context(), "pi-071", fleet.TargetEnvelope{Version: 4, Target: json.RawMessage(`{"a":1}`)}); err != nil {
			t.Fatal(err)
		}
		if err := op.PushGroupTarget(t.Context(), "north", fleet.TargetEnvelope{Version: 9, Target: json.RawMessage(`{"b":1}`)}); err != nil {
			t.Fatal(err)
		}
		// Both live deliveries are lost; the refreshes bring both.
		got := map[string]uint64{}
		for len(got) < 2 {
			st := recv(t, d.Targets(), "a target asked for again")
			got[st.Scope] = st.Version
		}
		if got["device/pi-071"] != 4 || got["group/north"] != 9 {
			t.Fatalf("targets %v", got)
		}
		if n, _ := d.Connection(); n != connects {
			t.Fatalf("the device connected again (%d → %d); the target must come on the same connection", connects, n)
		}
	})
}

// A retained target the device refuses is refused once per connection,
// however often the device asks for it again (subscribing twice, and the
// refreshes, here every 100 ms).
func TestRefusedTargetOncePerConnection(t *testing.T) {
	forEachBroker(t, func(t *testing.T, url string) {
		opts := testOptions(url, "pi-072")
		opts.TargetRefresh = 100 * time.Millisecond
		d := newDevice(t, opts)
		publishRaw(t, url, topics.DeviceTarget("pi-072"), `{"format":1,"version":"seven"}`, true)
		run(t, d)
		recv(t, d.Refusals(), "the refusal")
		n, _ := d.Connection()
		// Any further refusal must come on another connection. A slow
		// machine makes fewer refreshes in this second: the test then
		// proves less, it does not fail.
		timeout := time.After(time.Second)
		for {
			select {
			case r := <-d.Refusals():
				if m, _ := d.Connection(); m == n {
					t.Fatalf("refused again on connection %d: %v", n, r.Err)
				}
				n, _ = d.Connection()
				continue
			case <-timeout:
			}
			break
		}
	})
}

// A broker that serves an older target again after a newer one (a NATS
// cluster's lagging retained index, met by a refresh) does not make the
// device offer it again on the same connection: a retained copy of a
// payload that came already is dropped. The test makes the broker retain
// version 1 again: its live copy is offered (a replay, which the agent
// refuses and says so), the retained copies the refreshes bring are not.
func TestStaleTargetOnSameConnection(t *testing.T) {
	forEachBroker(t, func(t *testing.T, url string) {
		op := dialOperator(t, url)
		opts := testOptions(url, "pi-073")
		opts.TargetRefresh = 100 * time.Millisecond
		d := newDevice(t, opts)
		run(t, d)
		waitConnected(t, d)
		topic := topics.DeviceTarget("pi-073")
		raw := rawClient(t, url)
		first := make(chan []byte, 1)
		if tok := raw.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
			select {
			case first <- m.Payload():
			default:
			}
		}); !tok.WaitTimeout(wait) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		for v := uint64(1); v <= 2; v++ {
			if err := op.PushTarget(t.Context(), "pi-073", fleet.TargetEnvelope{Version: v, Target: json.RawMessage(`{}`)}); err != nil {
				t.Fatal(err)
			}
			if got := recv(t, d.Targets(), fmt.Sprintf("target %d", v)); got.Version != v {
				t.Fatalf("target %d, want %d", got.Version, v)
			}
		}
		v1 := recv(t, first, "version 1's bytes")
		if tok := raw.Publish(topic, 1, true, v1); !tok.WaitTimeout(wait) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		if got := recv(t, d.Targets(), "version 1 published again"); got.Version != 1 {
			t.Fatalf("target %d, want the replayed 1", got.Version)
		}
		// The refreshes (every 100 ms) now bring version 1 retained. A
		// slow machine makes fewer in this second: the test proves less,
		// it does not fail.
		select {
		case got := <-d.Targets():
			t.Fatalf("version %d offered again by a refresh", got.Version)
		case <-time.After(time.Second):
		}
		if err := op.PushTarget(t.Context(), "pi-073", fleet.TargetEnvelope{Version: 3, Target: json.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, d.Targets(), "target 3"); got.Version != 3 {
			t.Fatalf("the device offered version %d before version 3", got.Version)
		}
	})
}
