package fleet_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/devbroker"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/internal/testbound"
	"github.com/tern-iot/tern/runtime/api"
)

// Every contract test runs against both brokers: the embedded one that
// developers use and Mosquitto that fleets run.
var (
	brokers = map[string]func(testing.TB) string{
		"embedded":  fleettest.Embedded,
		"mosquitto": fleettest.Mosquitto,
	}
	brokersAt = map[string]func(testing.TB, string) string{
		"embedded":  fleettest.EmbeddedAt,
		"mosquitto": fleettest.MosquittoAt,
	}
)

var topics = fleet.Topics{Fleet: "demo"}

// wait bounds every wait for something the broker should deliver: a bound
// on a hang, never a speed claim (see testbound).
var wait = testbound.Hang

func forEachBroker(t *testing.T, test func(t *testing.T, url string)) {
	t.Parallel()
	for name, start := range brokers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, start(t))
		})
	}
}

// A target pushed while the device is offline reaches it when it connects
// for the first time: it is retained.
func TestRetainedTargetReachesNewDevice(t *testing.T) {
	forEachBroker(t, func(t *testing.T, url string) {
		op := dialOperator(t, url)
		pushed := fleet.TargetEnvelope{Version: 3, Target: json.RawMessage(`{"led":{"on":true}}`), Issued: time.Date(2025, 11, 24, 13, 0, 0, 0, time.UTC)}
		if err := op.PushTarget(t.Context(), "pi-001", pushed); err != nil {
			t.Fatal(err)
		}
		d := newDevice(t, testOptions(url, "pi-001"))
		run(t, d)
		got := recv(t, d.Targets(), "the retained target")
		pushed.Format = fleet.Format
		pushed.SetTopics(topics) // the operator makes an unsigned envelope for its fleet
		if !reflect.DeepEqual(got.TargetEnvelope, pushed) || got.Scope != fleet.DeviceScope("pi-001") {
			t.Errorf("got %+v, want %+v", got, pushed)
		}
	})
}

// A device in a group receives the group's target, marked with the group's
// scope, and a target signed for the group verifies only for that scope.
func TestGroupTarget(t *testing.T) {
	forEachBroker(t, func(t *testing.T, url string) {
		dir := t.TempDir()
		pub, _ := signing.Generate(dir, "ops")
		priv, _ := signing.ReadPrivate(filepath.Join(dir, "ops.key"))
		op := dialOperator(t, url)
		env := fleet.TargetEnvelope{Version: 4, Target: json.RawMessage(`{"mode":"eco"}`)}
		env.SetTopics(topics)
		if err := env.Sign(fleet.GroupScope("heaters"), priv); err != nil {
			t.Fatal(err)
		}
		if err := op.PushGroupTarget(t.Context(), "heaters", env); err != nil {
			t.Fatal(err)
		}
		opts := testOptions(url, "pi-003")
		opts.Groups = []string{"heaters"}
		d := newDevice(t, opts)
		run(t, d)
		got := recv(t, d.Targets(), "the group's retained target")
		if got.Scope != fleet.GroupScope("heaters") || got.Version != 4 {
			t.Fatalf("got %s version %d", got.Scope, got.Version)
		}
		trust := signing.NewTrust(pub)
		if err := got.Verify(got.Scope, trust); err != nil {
			t.Fatalf("verify for the group: %v", err)
		}
		if err := got.Verify(fleet.DeviceScope("pi-003"), trust); !errors.Is(err, fleet.ErrWrongScope) {
			t.Fatalf("a group's signature must not pass as the device's: %v", err)
		}
		got.SignedScope = fleet.DeviceScope("pi-003") // the field is not what is trusted: the signature is
		if err := got.Verify(fleet.DeviceScope("pi-003"), trust); !errors.Is(err, signing.ErrBadSig) {
			t.Fatalf("a group's signature, its scope field rewritten, must not pass as the device's: %v", err)
		}
	})
}

// A target pushed while the device was away reaches it when it comes
// back, as the latest retained target: the device subscribes at QoS 0
// (docs/mqtt.md, Delivery), so nothing but the retained message carries
// it, and the older target pushed before it does not come at all.
func TestTargetPushedWhileAway(t *testing.T) {
	forEachBroker(t, func(t *testing.T, url string) {
		online := watchOnline(t, url, topics.Online("pi-002"))
		first := newDevice(t, testOptions(url, "pi-002"))
		stop := run(t, first)
		expect(t, online, "true")
		stop()
		expect(t, online, "false") // clean exit

		op := dialOperator(t, url)
		for v := uint64(4); v <= 5; v++ {
			if err := op.PushTarget(t.Context(), "pi-002", fleet.TargetEnvelope{Version: v, Target: json.RawMessage(`{"fan":"on"}`)}); err != nil {
				t.Fatal(err)
			}
		}
		fleettest.SyncRetained(t, url)

		again := newDevice(t, testOptions(url, "pi-002")) // same device, same client id: ternd restarted
		run(t, again)
		expect(t, online, "true") // subscribed (twice) before it says so
		if got := recv(t, again.Targets(), "the target pushed while away"); got.Version != 5 {
			t.Errorf("got version %d, want 5", got.Version)
		}
		for {
			select {
			case got := <-again.Targets():
				if got.Version != 5 {
					t.Errorf("then version %d: only the retained target, 5, should come", got.Version)
				}
				continue
			default:
			}
			break
		}
	})
}

// online is true while connected, false through the last will when the
// connection dies, true again after the automatic reconnect, false on a
// clean exit.
func TestOnlineAndLastWill(t *testing.T) {
	forEachBroker(t, func(t *testing.T, url string) {
		online := watchOnline(t, url, topics.Online("pi-003"))
		link := newCuttableNet()
		d := newDevice(t, fleet.WithDialer(testOptions(url, "pi-003"), link.dial))
		stop := run(t, d)
		expect(t, online, "true")

		link.down() // no DISCONNECT reaches the broker, and no reconnect yet
		expect(t, online, "false")
		link.up()
		expect(t, online, "true")
		if n := link.dials(); n < 2 {
			t.Errorf("%d successful dials, want at least 2", n)
		}

		// The session still delivers targets after the reconnect.
		op := dialOperator(t, url)
		if err := op.PushTarget(t.Context(), "pi-003", fleet.TargetEnvelope{Version: 1, Target: json.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
		recv(t, d.Targets(), "a target after reconnecting")

		stop()
		expect(t, online, "false")
	})
}

// Hammer: the device publishes without pause while its network flaps. It
// must not crash (paho's own resend used to, see noStore), and every event
// reaches a consumer on a steady connection, in order, once after dropping
// repeated Seqs.
func TestPublishWhileNetworkFlaps(t *testing.T) {
	forEachBroker(t, func(t *testing.T, url string) {
		audit := newAuditor(t, url, "pi-009")
		link := newCuttableNet()
		d := newDevice(t, fleet.WithDialer(testOptions(url, "pi-009"), link.dial))
		run(t, d)
		waitConnected(t, d)

		ctx, cancel := context.WithCancel(t.Context())
		var made atomic.Int64
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ctx.Err() == nil; i++ {
				if err := d.PublishEvent(ctx, api.Event{ID: fmt.Sprintf("e-%d", i), Kind: api.EventDrift}); err != nil {
					t.Errorf("PublishEvent: %v", err)
					return
				}
				made.Add(1)
			}
		}()
		for range 8 {
			time.Sleep(50 * time.Millisecond)
			link.down()
			time.Sleep(20 * time.Millisecond)
			link.up()
			waitConnected(t, d)
		}
		cancel()
		<-done
		n := int(made.Load())
		waitDrained(t, d)
		audit.waitFor(t, uint64(n))
		t.Logf("%d events over %d connections", n, link.dials())
		checkExactlyOnce(t, audit, n, func(i int) string { return fmt.Sprintf("e-%d", i) })
	})
}

// What a device publishes reaches an operator's watch.
func TestStateAndEventsReachOperator(t *testing.T) {
	forEachBroker(t, func(t *testing.T, url string) {
		op := dialOperator(t, url)
		ctx, cancel := context.WithCancel(t.Context())
		states, err := op.WatchStates(ctx, fleet.AnyDevice)
		if err != nil {
			t.Fatal(err)
		}
		events, err := op.WatchEvents(ctx, "pi-004")
		if err != nil {
			t.Fatal(err)
		}

		d := newDevice(t, testOptions(url, "pi-004"))
		run(t, d)
		waitConnected(t, d)

		status := api.Status{
			Time: time.Date(2025, 11, 24, 13, 0, 5, 0, time.UTC), TargetVersion: 7, Converged: true,
			Phase: api.PhaseIdle, State: json.RawMessage(`{"relays":{"fan":{"on":true}}}`),
			Modules: map[string]string{"relay": "1.2.0"},
		}
		if err := d.PublishState(t.Context(), status); err != nil {
			t.Fatal(err)
		}
		event := api.Event{
			ID: "e-1", Time: time.Date(2025, 11, 24, 13, 0, 4, 0, time.UTC), Kind: api.EventTaskDone,
			TargetVersion: 7, Module: "relay", Job: "switch", Path: "/relays/fan",
		}
		if err := d.PublishEvent(t.Context(), event); err != nil {
			t.Fatal(err)
		}

		wantState := fleet.StateReport{Format: fleet.ReportFormat, Device: "pi-004", Status: status}
		if got := recv(t, states, "the state report"); !reflect.DeepEqual(got, wantState) {
			t.Errorf("state: got %+v, want %+v", got, wantState)
		}
		wantEvent := fleet.EventReport{Format: fleet.ReportFormat, Device: "pi-004", Seq: 1, Event: event}
		got := recv(t, events, "the event report")
		if len(got.Epoch) != 16 {
			t.Errorf("event: epoch %q, want 16 hex digits", got.Epoch)
		}
		if got.Epoch = ""; !reflect.DeepEqual(got, wantEvent) {
			t.Errorf("event: got %+v, want %+v", got, wantEvent)
		}

		// A late watcher still gets the last state: it is retained (once
		// the broker has indexed it; see SyncRetained).
		fleettest.SyncRetained(t, url)
		late, err := op.WatchStates(t.Context(), "pi-004")
		if err != nil {
			t.Fatal(err)
		}
		if got := recv(t, late, "the retained state report"); got.TargetVersion != 7 {
			t.Errorf("retained state: got %+v", got)
		}

		cancel()
		drained(t, states)
		drained(t, events)
	})
}

// An operator sees devices come and go on their online topics, and the
// groups a device belongs to in its state reports.
func TestWatchOnlineAndGroups(t *testing.T) {
	forEachBroker(t, func(t *testing.T, url string) {
		op := dialOperator(t, url)
		online, err := op.WatchOnline(t.Context(), fleet.AnyDevice)
		if err != nil {
			t.Fatal(err)
		}
		opts := testOptions(url, "pi-011")
		opts.Groups = []string{"heaters", "floor-2"}
		d := newDevice(t, opts)
		stop := run(t, d)
		waitConnected(t, d)
		if got := recv(t, online, "online=true"); got != (fleet.Presence{Device: "pi-011", Online: true}) {
			t.Fatalf("got %+v, want pi-011 online", got)
		}
		states, err := op.WatchStates(t.Context(), "pi-011")
		if err != nil {
			t.Fatal(err)
		}
		if err := d.PublishState(t.Context(), api.Status{TargetVersion: 1, Phase: api.PhaseIdle}); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, states, "the state"); !reflect.DeepEqual(got.Groups, opts.Groups) {
			t.Errorf("state report groups %v, want %v", got.Groups, opts.Groups)
		}
		stop()
		if got := recv(t, online, "online=false"); got != (fleet.Presence{Device: "pi-011", Online: false}) {
			t.Fatalf("got %+v, want pi-011 offline", got)
		}
		// A flag nobody can read is skipped, not delivered as offline.
		publishRaw(t, url, topics.Online("pi-012"), "maybe", true)
		publishRaw(t, url, topics.Online("pi-013"), "true", true)
		if got := recv(t, online, "pi-013 online"); got.Device != "pi-013" || !got.Online {
			t.Fatalf("got %+v, want pi-013 online (pi-012's flag does not parse)", got)
		}
	})
}

// An operator reads the targets retained for a device's scopes, as the
// device takes them, and computes the combined version the device should
// report from them.
func TestRetainedTargets(t *testing.T) {
	forEachBroker(t, func(t *testing.T, url string) {
		op := dialOperator(t, url)
		push := func(scope string, v uint64) {
			t.Helper()
			env := fleet.TargetEnvelope{Version: v, Target: json.RawMessage(fmt.Sprintf(`{"v":%d}`, v))}
			var err error
			if group, ok := strings.CutPrefix(scope, "group/"); ok {
				err = op.PushGroupTarget(t.Context(), group, env)
			} else {
				err = op.PushTarget(t.Context(), strings.TrimPrefix(scope, "device/"), env)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		push(fleet.GroupScope("heaters"), 40)
		push(fleet.GroupScope("floor-2"), 300)
		push(fleet.DeviceScope("pi-001"), 5)
		// What devices refuse does not count: made for another fleet, not
		// an envelope at all.
		publishRaw(t, url, topics.GroupTarget("fans"), `{"format":2,"prefix":"tern","fleet":"prod","version":9,"target":{}}`, true)
		publishRaw(t, url, topics.DeviceTarget("pi-002"), `relay on`, true)

		scopes := append(fleet.Scopes("pi-001", []string{"heaters", "floor-2", "fans"}), fleet.DeviceScope("pi-002"), fleet.GroupScope("heaters"))
		got, err := op.RetainedTargets(t.Context(), scopes, 500*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		versions := map[string]uint64{}
		for sc, env := range got {
			versions[sc] = env.Version
			if want := fmt.Sprintf(`{"v":%d}`, env.Version); string(env.Target) != want {
				t.Errorf("%s: target %s, want %s", sc, env.Target, want)
			}
		}
		want := map[string]uint64{"group/heaters": 40, "group/floor-2": 300, "device/pi-001": 5}
		if !reflect.DeepEqual(versions, want) {
			t.Errorf("RetainedTargets: %v, want %v", versions, want)
		}
		var vs []uint64
		for _, sc := range fleet.Scopes("pi-001", []string{"heaters", "floor-2", "fans"}) {
			vs = append(vs, got[sc].Version)
		}
		if sum, err := fleet.CombinedVersion(vs...); err != nil || sum != 345 {
			t.Errorf("combined version %d, %v; want 345", sum, err)
		}

		// When every scope has one, it does not wait for the quiet gap:
		// with a wait longer than the context's, it returns in time.
		ctx, cancel := context.WithTimeout(t.Context(), wait)
		defer cancel()
		if got, err := op.RetainedTargets(ctx, fleet.Scopes("pi-001", []string{"heaters"}), 10*wait); err != nil || len(got) != 2 {
			t.Errorf("RetainedTargets of scopes that all have one: %v, %v", got, err)
		}

		// Two reads of the same scopes at once both get them: each
		// subscription makes the broker send the retained ones again.
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				if got, err := op.RetainedTargets(t.Context(), []string{"group/heaters"}, wait); err != nil || got["group/heaters"].Version != 40 {
					t.Errorf("concurrent RetainedTargets: %v, %v", got, err)
				}
			})
		}
		wg.Wait()

		// More scopes than one SUBSCRIBE carries.
		var many []string
		for i := range 1200 {
			many = append(many, fleet.DeviceScope(fmt.Sprintf("pi-%04d", i)))
		}
		push(fleet.DeviceScope("pi-0000"), 7)
		push(fleet.DeviceScope("pi-0777"), 8)
		push(fleet.DeviceScope("pi-1199"), 9)
		got, err = op.RetainedTargets(t.Context(), many, 500*time.Millisecond)
		if err != nil || len(got) != 3 || got["device/pi-0000"].Version != 7 || got["device/pi-0777"].Version != 8 || got["device/pi-1199"].Version != 9 {
			t.Errorf("RetainedTargets of 1200 devices: %d found, %v; want pi-0000, pi-0777 and pi-1199", len(got), err)
		}

		for _, bad := range []string{"module/relay", "device/a+b", "group/", "heaters"} {
			if _, err := op.RetainedTargets(t.Context(), []string{bad}, time.Second); err == nil || !strings.Contains(err.Error(), "scope") {
				t.Errorf("RetainedTargets(%q): %v, want an error about the scope", bad, err)
			}
		}
		if got, err := op.RetainedTargets(t.Context(), nil, wait); err != nil || len(got) != 0 {
			t.Errorf("RetainedTargets of no scope: %v, %v", got, err)
		}
	})
}

// Watches opened one after the other while the broker is still sending the
// retained reports of the first all succeed (the embedded broker used to
// refuse them, packet identifier in use).
func TestWatchesWhileRetainedArrive(t *testing.T) {
	forEachBroker(t, func(t *testing.T, url string) {
		c := rawClient(t, url)
		for i := range 50 {
			id := fmt.Sprintf("pi-%03d", i)
			c.Publish(topics.State(id), 1, true, fmt.Sprintf(`{"format":1,"device":%q}`, id))
			tok := c.Publish(topics.Online(id), 1, true, "true")
			if !tok.WaitTimeout(wait) || tok.Error() != nil {
				t.Fatal(tok.Error())
			}
		}
		op := dialOperator(t, url)
		for range 5 {
			if _, err := op.WatchStates(t.Context(), fleet.AnyDevice); err != nil {
				t.Fatal(err)
			}
			if _, err := op.WatchOnline(t.Context(), fleet.AnyDevice); err != nil {
				t.Fatal(err)
			}
			if _, err := op.WatchEvents(t.Context(), "pi-001"); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// An operator's watch survives the loss of its connection: it reconnects
// and subscribes again (its session is clean, the broker forgot it).
func TestOperatorWatchSurvivesReconnect(t *testing.T) {
	forEachBroker(t, func(t *testing.T, url string) {
		link := newCuttableNet()
		opts := fleet.WithOperatorDialer(fleet.OperatorOptions{
			Broker: url, Topics: topics, Logger: fleettest.Logger(t, "operator"), ConnectTimeout: 2 * time.Second,
		}, link.dial)
		op, err := fleet.DialOperator(t.Context(), opts)
		if err != nil {
			t.Fatal(err)
		}
		defer op.Close()
		states, err := op.WatchStates(t.Context(), "pi-008")
		if err != nil {
			t.Fatal(err)
		}
		d := newDevice(t, testOptions(url, "pi-008"))
		run(t, d)
		waitConnected(t, d)

		link.down()
		if err := d.PublishState(t.Context(), api.Status{TargetVersion: 2, Phase: api.PhaseIdle}); err != nil {
			t.Fatal(err)
		}
		link.up()
		// The report comes live or, once resubscribed, as the retained one.
		for got := recv(t, states, "a state report after reconnecting"); got.TargetVersion != 2; got = recv(t, states, "state version 2") {
		}
		if n := link.dials(); n < 2 {
			t.Errorf("%d successful dials, want at least 2", n)
		}
	})
}

// Payloads on the target topic that are not valid envelopes go to
// Refusals, with a message for the operator; valid ones still go through.
func TestMalformedTargetsAreRefused(t *testing.T) {
	forEachBroker(t, func(t *testing.T, url string) {
		online := watchOnline(t, url, topics.Online("pi-005"))
		d := newDevice(t, testOptions(url, "pi-005"))
		run(t, d)
		expect(t, online, "true") // subscribed

		topic := topics.DeviceTarget("pi-005")
		for _, tc := range []struct {
			payload string
			is      error
			msg     string
		}{
			{`fan on please`, fleet.ErrMalformed, "not valid JSON"},
			{`{"format":5,"prefix":"tern","fleet":"demo","version":1,"target":{}}`, fleet.ErrUnsupportedFormat, "upgrade ternd"},
			{`{"format":1,"version":1,"target":{}}`, fleet.ErrUnsupportedFormat, "no longer reads"},
			{`{"format":2,"prefix":"tern","fleet":"demo","version":0,"target":{}}`, fleet.ErrMalformed, "version 0"},
			{`{"format":2,"prefix":"tern","fleet":"demo","version":1,"target":[1]}`, fleet.ErrMalformed, `"target" must be a JSON object`},
			{`{"format":2,"version":1,"target":{}}`, fleet.ErrMalformed, `no "fleet"`},
			{`{"format":2,"prefix":"tern","fleet":"prod","version":1,"target":{}}`, fleet.ErrWrongFleet, `made for fleet "prod"`},
			{`{"format":2,"prefix":"acme","fleet":"demo","version":1,"target":{}}`, fleet.ErrWrongFleet, `topic prefix "acme"`},
			{`{"format":2,"prefix":"tern","fleet":"demo","version":9007199254740992,"target":{}}`, fleet.ErrMalformed, "above the largest version"},
		} {
			publishRaw(t, url, topic, tc.payload, false)
			r := recv(t, d.Refusals(), "a refusal")
			if r.Topic != topic || !errors.Is(r.Err, tc.is) || !strings.Contains(r.Err.Error(), tc.msg) {
				t.Errorf("payload %s: got refusal %q on %s, want %v containing %q", tc.payload, r.Err, r.Topic, tc.is, tc.msg)
			}
		}
		publishRaw(t, url, topic, `{"format":2,"prefix":"tern","fleet":"demo","version":9007199254740991,"target":{}}`, false)
		if got := recv(t, d.Targets(), "the valid target"); got.Version != fleet.MaxVersion {
			t.Errorf("got version %d, want the largest, %d", got.Version, uint64(fleet.MaxVersion))
		}
		select {
		case r := <-d.Refusals():
			t.Errorf("unexpected refusal %v", r.Err)
		default:
		}
	})
}

// A device started with no broker keeps working, and connects by itself
// once a broker appears.
func TestDeviceWaitsForBroker(t *testing.T) {
	t.Parallel()
	for name, startAt := range brokersAt {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			addr := fleettest.FreeAddr(t)
			url := "tcp://" + addr
			d := newDevice(t, testOptions(url, "pi-006"))
			run(t, d)

			time.Sleep(700 * time.Millisecond) // several failed attempts
			if d.Connected() {
				t.Fatal("connected with no broker")
			}
			// Reports made offline wait for the broker.
			if err := d.PublishState(t.Context(), api.Status{TargetVersion: 9, Phase: api.PhaseIdle}); err != nil {
				t.Fatal(err)
			}
			if err := d.PublishEvent(t.Context(), api.Event{ID: "offline", Kind: api.EventDrift}); err != nil {
				t.Fatal(err)
			}

			startAt(t, addr)
			waitConnected(t, d)
			expect(t, watchOnline(t, url, topics.Online("pi-006")), "true")
			op := dialOperator(t, url)
			if err := op.PushTarget(t.Context(), "pi-006", fleet.TargetEnvelope{Version: 1, Target: json.RawMessage(`{}`)}); err != nil {
				t.Fatal(err)
			}
			recv(t, d.Targets(), "a target once the broker is up")
			states, err := op.WatchStates(t.Context(), "pi-006")
			if err != nil {
				t.Fatal(err)
			}
			if got := recv(t, states, "the state report made offline"); got.TargetVersion != 9 {
				t.Errorf("state report made offline: got %+v", got)
			}
			waitDrained(t, d)
		})
	}
}

func TestRunWithoutBrokerStopsPromptly(t *testing.T) {
	t.Parallel()
	d := newDevice(t, testOptions("tcp://"+fleettest.FreeAddr(t), "pi-007"))
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := d.Run(ctx); err != nil {
		t.Errorf("Run: %v", err)
	}
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Errorf("Run took %v to stop", took)
	}
	if _, ok := <-d.Targets(); ok {
		t.Error("Targets still open after Run")
	}
	if err := d.Run(t.Context()); err == nil {
		t.Error("second Run succeeded")
	}
}

func TestDialOperatorUnreachable(t *testing.T) {
	t.Parallel()
	url := "tcp://" + fleettest.FreeAddr(t)
	_, err := fleet.DialOperator(t.Context(), fleet.OperatorOptions{Broker: url, Topics: topics, ConnectTimeout: time.Second})
	if err == nil {
		t.Fatal("dialled a broker that is not there")
	}
	for _, want := range []string{"fleet: cannot reach broker " + url, "is it running? start one with `tern broker`"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestPushTargetRefusesWhatDevicesRefuse(t *testing.T) {
	t.Parallel()
	op := dialOperator(t, fleettest.Embedded(t))
	for _, tc := range []struct {
		device string
		env    fleet.TargetEnvelope
		msg    string
	}{
		{"pi-001", fleet.TargetEnvelope{Target: json.RawMessage(`{}`)}, "version 0"},
		{"pi-001", fleet.TargetEnvelope{Version: 1, Target: json.RawMessage(`[]`)}, "must be a JSON object"},
		{"pi-001", fleet.TargetEnvelope{Format: 1, Version: 1, Target: json.RawMessage(`{}`)}, "format 1"},
		{"pi-001", fleet.TargetEnvelope{Version: fleet.MaxVersion + 1, Target: json.RawMessage(`{}`)}, "above the largest version"},
		{"pi-001", fleet.TargetEnvelope{Prefix: "tern", Fleet: "prod", Version: 1, Target: json.RawMessage(`{}`)}, `made for fleet "prod"`},
		{"pi-001", fleet.TargetEnvelope{Version: 1, Target: json.RawMessage(`{}`), Key: "0123456789abcdef", Sig: []byte{1}}, "signed for no fleet"},
		{"+", fleet.TargetEnvelope{Version: 1, Target: json.RawMessage(`{}`)}, "wildcard"},
	} {
		if err := op.PushTarget(t.Context(), tc.device, tc.env); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("PushTarget(%s, %+v): got %v, want error containing %q", tc.device, tc.env, err, tc.msg)
		}
	}
}

func TestNewDeviceChecksOptions(t *testing.T) {
	good := testOptions("tcp://localhost:1883", "pi-001")
	good.Store = fleettest.Store(t)
	for _, tc := range []struct {
		change func(*fleet.DeviceOptions)
		msg    string
	}{
		{func(o *fleet.DeviceOptions) { o.Broker = "" }, "no broker address"},
		{func(o *fleet.DeviceOptions) { o.Broker = "localhost:1883" }, "use tcp://host:port"},
		{func(o *fleet.DeviceOptions) { o.Broker = "ws://localhost:8883" }, `scheme "ws" is not supported`},
		{func(o *fleet.DeviceOptions) { o.Broker = "ssl://localhost" }, "no CA file"},
		{func(o *fleet.DeviceOptions) { o.TLS.CA = fleet.SystemRoots }, "plain TCP"},
		{func(o *fleet.DeviceOptions) { o.Broker, o.TLS.CA = "mqtts://localhost", "/nonexistent/ca.pem" }, "cannot read the CA file: open /nonexistent/ca.pem"},
		{func(o *fleet.DeviceOptions) {
			o.Broker, o.TLS = "tls://localhost", fleet.TLSFiles{CA: fleet.SystemRoots, Cert: "c.pem"}
		}, "has no key"},
		{func(o *fleet.DeviceOptions) { o.Device = "pi/1" }, "device id"},
		{func(o *fleet.DeviceOptions) { o.Topics.Fleet = "" }, "fleet name"},
		{func(o *fleet.DeviceOptions) { o.KeepAlive = time.Second }, "at least 2s"},
		{func(o *fleet.DeviceOptions) { o.ConnectTimeout = -1 }, "negative"},
		{func(o *fleet.DeviceOptions) { o.Store = nil }, "Store is nil"},
		{func(o *fleet.DeviceOptions) { o.OutboxLimit = -1 }, "OutboxLimit is negative"},
		{func(o *fleet.DeviceOptions) { o.InFlight = -5 }, "InFlight is negative"},
	} {
		o := good
		tc.change(&o)
		if _, err := fleet.NewDevice(o); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%+v: got %v, want error containing %q", o, err, tc.msg)
		}
	}
	if _, err := fleet.NewDevice(good); err != nil {
		t.Error(err)
	}
}

func TestBroker(t *testing.T) {
	t.Parallel()
	b, err := devbroker.New("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, port, _ := net.SplitHostPort(b.Addr()); port == "0" || port == "" {
		t.Errorf("Addr() = %q, want the real port", b.Addr())
	}
	if b.URL() != "tcp://"+b.Addr() {
		t.Errorf("URL() = %q", b.URL())
	}

	taken, err := devbroker.New(b.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := taken.Start(); err == nil || !strings.Contains(err.Error(), "cannot listen on "+b.Addr()) {
		t.Errorf("second broker on the same port: got %v", err)
	}
	if err := taken.Close(); err != nil {
		t.Error(err)
	}
	if _, err := devbroker.New("1883", nil); err == nil {
		t.Error("NewBroker accepted an address without a host")
	}
	if err := b.Close(); err != nil {
		t.Error(err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// cuttableConn is a connection whose network can be cut: it is closed, and
// reads fail as they do when a link drops. (paho ignores "use of closed
// network connection", taking it for its own close, and would only notice
// the loss at the next keep-alive.)
type cuttableConn struct {
	net.Conn
	isCut atomic.Bool
}

func (c *cuttableConn) cut() {
	c.isCut.Store(true)
	c.Conn.Close()
}

func (c *cuttableConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && c.isCut.Load() {
		return n, syscall.ECONNRESET
	}
	return n, err
}

// cuttableNet is a network that a test can take down: it cuts the open
// connections and refuses new ones until it is up again.
type cuttableNet struct {
	mu     sync.Mutex
	isDown bool
	conns  []*cuttableConn
}

func newCuttableNet() *cuttableNet { return new(cuttableNet) }

func (n *cuttableNet) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.isDown {
		return nil, syscall.ENETUNREACH
	}
	c, err := new(net.Dialer).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	n.conns = append(n.conns, &cuttableConn{Conn: c})
	return n.conns[len(n.conns)-1], nil
}

func (n *cuttableNet) down() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.isDown = true
	for _, c := range n.conns {
		c.cut()
	}
}

func (n *cuttableNet) up() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.isDown = false
}

// dials counts the connections made.
func (n *cuttableNet) dials() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.conns)
}

// testOptions retry soon, so that reconnects happen within the test's
// time. The keep-alive stays the default: a cut link is noticed at once
// (the socket closes), and a short keep-alive is a speed claim, because the
// ping's answer waits behind the message being read. An 11 MB release
// takes seconds to read under the race detector on a busy machine; with a
// 2 s keep-alive the device gave up on the ping, reconnected, got the
// retained release again, and never finished.
func testOptions(url, device string) fleet.DeviceOptions {
	return fleet.DeviceOptions{
		Broker:           url,
		Topics:           topics,
		Device:           device,
		ConnectTimeout:   2 * time.Second,
		MaxRetryInterval: 200 * time.Millisecond,
	}
}

func newDevice(t *testing.T, opts fleet.DeviceOptions) *fleet.Device {
	t.Helper()
	opts.Logger = fleettest.Logger(t, "device "+opts.Device)
	if opts.Store == nil {
		opts.Store = fleettest.Store(t)
	}
	d, err := fleet.NewDevice(opts)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// run runs d until the returned stop is called or the test ends, and
// checks that Run returns nil.
func run(t *testing.T, d *fleet.Device) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(wait):
				t.Errorf("Run did not return %v after its context was cancelled", wait)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func dialOperator(t *testing.T, url string) *fleet.Operator {
	t.Helper()
	op, err := fleet.DialOperator(t.Context(), fleet.OperatorOptions{
		Broker: url, Topics: topics, Logger: fleettest.Logger(t, "operator"), ConnectTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(op.Close)
	return op
}

func waitConnected(t *testing.T, d *fleet.Device) {
	t.Helper()
	for deadline := time.Now().Add(wait); !d.Connected(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("device not connected after %v", wait)
		}
	}
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v, ok := <-ch:
		if !ok {
			t.Fatalf("waiting for %s: channel closed", what)
		}
		return v
	case <-time.After(wait):
		t.Fatalf("no %s after %v", what, wait)
	}
	panic("unreachable")
}

// drained reads ch until it is closed, which must be soon.
func drained[T any](t *testing.T, ch <-chan T) {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatalf("channel not closed %v after its context was cancelled", wait)
		}
	}
}

func expect(t *testing.T, ch <-chan string, want string) {
	t.Helper()
	if got := recv(t, ch, "online="+want); got != want {
		t.Fatalf("online: got %q, want %q", got, want)
	}
}

// rawClient is a plain MQTT client, to see and send exactly what travels on
// the wire.
func rawClient(t *testing.T, url string) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetCleanSession(true).SetConnectTimeout(2 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("raw client: connect to %s: %v", url, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// subscribeRaw returns the payloads published on topic from now on.
func subscribeRaw(t *testing.T, url, topic string) <-chan string {
	t.Helper()
	return subscribeRawDedup(t, url, topic, false)
}

// watchOnline returns the values published on an online topic from now on,
// without consecutive repeats: online is a state, and a broker may deliver
// the retained value as well as the live one to a new subscriber (when
// the two race).
func watchOnline(t *testing.T, url, topic string) <-chan string {
	t.Helper()
	// The flag the device published may not be in the embedded broker's
	// retained index yet (nats-server indexes it some ms after the
	// acknowledgement), and a subscription in that gap never gets it.
	fleettest.SyncRetained(t, url)
	return subscribeRawDedup(t, url, topic, true)
}

func subscribeRawDedup(t *testing.T, url, topic string, dedup bool) <-chan string {
	t.Helper()
	ch := make(chan string, 1000) // more than any test publishes
	last := ""                    // paho calls the handler for one message at a time
	tok := rawClient(t, url).Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
		v := string(m.Payload())
		if dedup && v == last {
			return
		}
		last = v
		select {
		case ch <- v:
		default:
		}
	})
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("raw client: subscribe %s: %v", topic, tok.Error())
	}
	return ch
}

func publishRaw(t *testing.T, url, topic, payload string, retained bool) {
	t.Helper()
	tok := rawClient(t, url).Publish(topic, 1, retained, payload)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("raw client: publish %s: %v", topic, tok.Error())
	}
}

// The shipped ACL (firmware/mosquitto/acl.conf) on a real Mosquitto: a
// device reads its own target and writes its own reports, and can neither
// read another device's target nor publish on its topics.
func TestShippedACL(t *testing.T) {
	acl, err := filepath.Abs(filepath.Join("..", "firmware", "mosquitto", "acl.conf"))
	if err != nil {
		t.Fatal(err)
	}
	url := fleettest.MosquittoWithACL(t, map[string]string{"tern-operator": "ops", "pi-001": "one", "pi-002": "two"}, acl)
	op, err := fleet.DialOperator(t.Context(), fleet.OperatorOptions{Broker: url, Topics: topics, Username: "tern-operator", Password: "ops", ConnectTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	for dev, v := range map[string]uint64{"pi-001": 1, "pi-002": 2} {
		if err := op.PushTarget(t.Context(), dev, fleet.TargetEnvelope{Version: v, Target: json.RawMessage(`{"secret":"` + dev + `"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	as := func(user, pass string) paho.Client {
		c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetUsername(user).SetPassword(pass).SetCleanSession(true).SetConnectTimeout(2 * time.Second))
		if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
			t.Fatalf("connect as %s: %v", user, tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(100) })
		return c
	}
	got := make(chan string, 8)
	pi1 := as("pi-001", "one")
	for _, topic := range []string{topics.DeviceTarget("pi-001"), topics.DeviceTarget("pi-002")} {
		pi1.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) { got <- m.Topic() }).WaitTimeout(wait)
	}
	// pi-001 publishes on pi-002's state topic; the operator watches it.
	states, err := op.WatchStates(t.Context(), "pi-002")
	if err != nil {
		t.Fatal(err)
	}
	pi1.Publish(topics.State("pi-002"), 1, true, `{"format":1,"device":"pi-002","phase":"idle","state":{"forged":true}}`).WaitTimeout(wait)
	// Its own state goes through.
	own, err := op.WatchStates(t.Context(), "pi-001")
	if err != nil {
		t.Fatal(err)
	}
	pi1.Publish(topics.State("pi-001"), 1, true, `{"format":1,"device":"pi-001","phase":"idle","state":{}}`).WaitTimeout(wait)
	if r := recv(t, own, "pi-001's own state"); r.Device != "pi-001" {
		t.Fatalf("own state: %+v", r)
	}
	// The operator reads the targets back (tern watch --pushed does).
	if got, err := op.RetainedTargets(t.Context(), []string{fleet.DeviceScope("pi-001"), fleet.DeviceScope("pi-002")}, wait); err != nil || got["device/pi-001"].Version != 1 || got["device/pi-002"].Version != 2 {
		t.Fatalf("operator reading the retained targets: %v, %v", got, err)
	}
	deadline := time.After(time.Second)
	seen := map[string]bool{}
	for done := false; !done; {
		select {
		case topic := <-got:
			seen[topic] = true
		case r := <-states:
			t.Fatalf("pi-001 published on pi-002's state topic: %+v", r)
		case <-deadline:
			done = true
		}
	}
	if !seen[topics.DeviceTarget("pi-001")] {
		t.Fatal("pi-001 cannot read its own target")
	}
	if seen[topics.DeviceTarget("pi-002")] {
		t.Fatal("pi-001 read pi-002's target")
	}
	// A wrong password does not get in.
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetUsername("pi-001").SetPassword("guess").SetConnectTimeout(2 * time.Second).SetAutoReconnect(false))
	if tok := c.Connect(); tok.WaitTimeout(wait) && tok.Error() == nil {
		c.Disconnect(100)
		t.Fatal("a wrong password was accepted")
	}
}

// A state reported just before the device stops (ternd reports once more
// as it shuts down) is on the broker, retained, before the device says it
// left: a late watcher sees it.
func TestLastStateBeforeStop(t *testing.T) {
	t.Parallel()
	url := fleettest.Embedded(t)
	for i := range 5 {
		id := fmt.Sprintf("pi-05%d", i)
		d := newDevice(t, testOptions(url, id))
		stop := run(t, d)
		waitConnected(t, d)
		if err := d.PublishState(t.Context(), api.Status{TargetVersion: 9, Converged: true, Phase: api.PhaseIdle}); err != nil {
			t.Fatal(err)
		}
		stop()
		r, err := fleet.ParseStateReport([]byte(recv(t, subscribeRaw(t, url, topics.State(id)), "the retained state")))
		if err != nil {
			t.Fatal(err)
		}
		if r.TargetVersion != 9 || !r.Converged {
			t.Errorf("%s: retained state %+v, want the one reported before the stop", id, r.Status)
		}
	}
}

// holdConn passes the CONNECT through, then holds every later write until
// one of them is the PUBLISH of a state report: the broker sees nothing of
// the device's subscriptions until the device has sent its last state.
type holdConn struct {
	net.Conn
	stateTopic  []byte
	subscribing chan struct{} // closed when the first SUBSCRIBE is held

	mu      sync.Mutex
	writes  int
	held    [][]byte
	release bool
}

func (c *holdConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	if c.writes == 1 || c.release {
		return c.Conn.Write(p)
	}
	kind := byte(0)
	if len(p) > 0 {
		kind = p[0] >> 4
	}
	if kind == 8 && len(c.held) == 0 {
		close(c.subscribing)
	}
	c.held = append(c.held, bytes.Clone(p))
	if kind != 3 || !bytes.Contains(p, c.stateTopic) {
		return len(p), nil
	}
	c.release = true
	for _, b := range c.held {
		if _, err := c.Conn.Write(b); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// A device stopped while it still subscribes after connecting sends the
// state reported before the stop on that connection, instead of closing it
// and keeping the report for the next start.
func TestStopDuringAnnounceSendsLastState(t *testing.T) {
	t.Parallel()
	url := fleettest.Embedded(t)
	const id = "pi-060"
	conn := make(chan *holdConn, 1)
	opts := fleet.WithDialer(testOptions(url, id), func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := new(net.Dialer).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		h := &holdConn{Conn: c, stateTopic: []byte(topics.State(id)), subscribing: make(chan struct{})}
		select {
		case conn <- h:
		default:
			t.Error("the device dialled twice")
		}
		return h, nil
	})
	d := newDevice(t, opts)
	stop := run(t, d)
	h := recv(t, conn, "a dial")
	select {
	case <-h.subscribing:
	case <-time.After(wait):
		t.Fatalf("the device did not subscribe after %v", wait)
	}
	if err := d.PublishState(t.Context(), api.Status{TargetVersion: 4, Converged: true, Phase: api.PhaseIdle}); err != nil {
		t.Fatal(err)
	}
	stop()
	r, err := fleet.ParseStateReport([]byte(recv(t, subscribeRaw(t, url, topics.State(id)), "the retained state")))
	if err != nil {
		t.Fatal(err)
	}
	if r.TargetVersion != 4 || !r.Converged {
		t.Errorf("retained state %+v, want the one reported before the stop", r.Status)
	}
}
