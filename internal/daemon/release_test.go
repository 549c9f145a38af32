package daemon_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/internal/daemon"
	"github.com/tern-iot/tern/internal/modfile"
	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/internal/wasmbuild"
	"github.com/tern-iot/tern/internal/wat"
	"github.com/tern-iot/tern/runtime"
)

// wait bounds every wait for something a device should report.
const wait = 30 * time.Second

// forEachBroker runs test against the embedded broker and Mosquitto.
func forEachBroker(t *testing.T, test func(t *testing.T, url string)) {
	t.Parallel()
	for name, start := range map[string]func(testing.TB) string{"embedded": fleettest.Embedded, "mosquitto": fleettest.Mosquitto} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, start(t))
		})
	}
}

// keys is an operator key the device trusts and a stranger's.
type keys struct {
	trusted, stranger ed25519.PrivateKey
	pub               string // the trusted public key, as ternd.yaml holds it
}

func newKeys(t *testing.T) keys {
	t.Helper()
	dir := t.TempDir()
	var k keys
	for name, p := range map[string]*ed25519.PrivateKey{"operator": &k.trusted, "stranger": &k.stranger} {
		if _, err := signing.Generate(dir, name); err != nil {
			t.Fatal(err)
		}
		priv, err := signing.ReadPrivate(filepath.Join(dir, name+".key"))
		if err != nil {
			t.Fatal(err)
		}
		*p = priv
	}
	k.pub = signing.FormatPublic(k.trusted.Public().(ed25519.PublicKey))
	return k
}

// signedModule reads a module from testdata and signs it with priv.
func signedModule(t *testing.T, name string, priv ed25519.PrivateKey) []byte {
	t.Helper()
	wasm := wat.AssembleFile(t, filepath.Join("testdata", name+".wat"))
	if priv == nil {
		return wasm
	}
	signed, err := modfile.Sign(wasm, priv)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// evilModule is the configuration of module evil, its 2.0.0 code signed
// with k's trusted key in a file of the test's.
func evilModule(t *testing.T, k keys) daemon.ModuleConfig {
	t.Helper()
	path := filepath.Join(t.TempDir(), "evil.wasm")
	if err := os.WriteFile(path, signedModule(t, "evil-2.0.0", k.trusted), 0o644); err != nil {
		t.Fatal(err)
	}
	return daemon.ModuleConfig{Name: "evil", Path: path}
}

// ternd is one ternd run in-process on a simulated board, restartable on
// the same data directory.
type ternd struct {
	t    *testing.T
	cfg  daemon.Config
	gpio *sim.GPIO
	log  *slog.Logger
	stop func()
}

func newTernd(t *testing.T, broker, trusted string, module daemon.ModuleConfig) *ternd {
	d := &ternd{t: t, gpio: sim.NewGPIO("GPIO17", "GPIO27"), log: fleettest.Logger(t, "ternd")}
	d.cfg = daemon.Config{
		Device: "pi-001", Fleet: "rel", Broker: broker, Board: "sim", DataDir: t.TempDir(),
		TrustedKeys: []string{trusted}, Modules: []daemon.ModuleConfig{module},
		ClockSync: "assume", // this machine's kernel may say unsynchronised: jobs with a time would wait
	}
	d.start()
	return d
}

func (d *ternd) start() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- daemon.Run(ctx, d.cfg, &daemon.Hardware{GPIO: d.gpio}, d.log) }()
	d.stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			d.t.Errorf("ternd stopped with %v", err)
		}
	})
	d.t.Cleanup(d.stop)
}

// fleetView is an operator and what it saw of device pi-001.
type fleetView struct {
	op     *fleet.Operator
	url    string
	events <-chan fleet.EventReport
	states <-chan fleet.StateReport
	last   fleet.StateReport
}

func watchFleet(t *testing.T, url string) *fleetView {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	op, err := fleet.DialOperator(ctx, fleet.OperatorOptions{Broker: url, Topics: fleet.Topics{Fleet: "rel"}, Logger: fleettest.Logger(t, "operator")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(op.Close)
	v := &fleetView{op: op, url: url}
	if v.events, err = op.WatchEvents(t.Context(), "pi-001"); err != nil {
		t.Fatal(err)
	}
	if v.states, err = op.WatchStates(t.Context(), "pi-001"); err != nil {
		t.Fatal(err)
	}
	return v
}

// event waits for an event of kind whose message contains substr.
func (v *fleetView) event(t *testing.T, kind runtime.EventKind, substr string) fleet.EventReport {
	t.Helper()
	return v.eventWithin(t, kind, substr, wait)
}

// eventWithin is event with a longer wait, for slow steps.
func (v *fleetView) eventWithin(t *testing.T, kind runtime.EventKind, substr string, wait time.Duration) fleet.EventReport {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case e := <-v.events:
			if e.Kind == kind && strings.Contains(e.Message, substr) {
				return e
			}
		case s := <-v.states:
			v.last = s
		case <-timeout:
			t.Fatalf("no %s event saying %q within %v", kind, substr, wait)
		}
	}
}

// state waits for a state report that satisfies ok.
func (v *fleetView) state(t *testing.T, what string, ok func(fleet.StateReport) bool) {
	t.Helper()
	v.stateWithin(t, what, wait, ok)
}

// stateWithin is state with a longer wait, for slow steps (compiling a Go
// module under the race detector on a busy machine).
func (v *fleetView) stateWithin(t *testing.T, what string, wait time.Duration, ok func(fleet.StateReport) bool) {
	t.Helper()
	if v.last.Device != "" && ok(v.last) {
		return
	}
	timeout := time.After(wait)
	for {
		select {
		case <-v.events:
		case s := <-v.states:
			v.last = s
			if ok(s) {
				return
			}
		case <-timeout:
			t.Fatalf("no state report with %s within %v; last: %+v", what, wait, v.last)
		}
	}
}

func (v *fleetView) running(t *testing.T, module, version string) {
	t.Helper()
	v.state(t, module+" "+version+" running", func(s fleet.StateReport) bool { return s.Modules[module] == version })
}

func (v *fleetView) release(t *testing.T, env fleet.ReleaseEnvelope) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := v.op.PushRelease(ctx, env); err != nil {
		t.Fatal(err)
	}
}

func (v *fleetView) push(t *testing.T, version uint64, target string, priv ed25519.PrivateKey) {
	t.Helper()
	env := fleet.TargetEnvelope{Format: fleet.Format, Version: version, Target: json.RawMessage(target)}
	env.SetTopics(relTopics)
	if err := env.Sign(fleet.DeviceScope("pi-001"), priv); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := v.op.PushTarget(ctx, "pi-001", env); err != nil {
		t.Fatal(err)
	}
}

// publishRaw publishes what the operator refuses to: a plain MQTT client.
func (v *fleetView) publishRaw(t *testing.T, topic string, payload []byte) {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(v.url).SetConnectTimeout(5 * time.Second).SetWriteTimeout(wait))
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("raw client: connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	if tok := c.Publish(topic, 1, true, payload); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("raw client: publish on %s: %v", topic, tok.Error())
	}
}

// relTopics are the fleet of the release tests' device.
var relTopics = fleet.Topics{Fleet: "rel"}

// release is a release of wasm for the device's fleet, signed with priv
// unless it is nil.
func release(module string, version uint64, wasm []byte, priv ed25519.PrivateKey) fleet.ReleaseEnvelope {
	env := fleet.NewRelease(module, version, wasm)
	env.SetTopics(relTopics)
	if priv != nil {
		env.Sign(priv)
	}
	return env
}

// A module release travels through MQTT to ternd and the agent uses it: a
// fix reaches a target the configured version cannot. Forged, unsigned,
// tampered, replayed, older, oversized and hash-mismatched releases, and
// releases of unsigned code, are refused with events while the installed
// version keeps running. A release that fails 3 calls in a row is rolled
// back. A release published while the device is offline arrives when it
// comes back, and after a restart an old release is still refused and the
// released code, not the configured file, runs.
func TestModuleRelease(t *testing.T) {
	forEachBroker(t, func(t *testing.T, url string) {
		k := newKeys(t)
		v1Path := filepath.Join(t.TempDir(), "evil.wasm")
		if err := os.WriteFile(v1Path, signedModule(t, "evil-1.0.0", k.trusted), 0o644); err != nil {
			t.Fatal(err)
		}
		v := watchFleet(t, url)
		d := newTernd(t, url, k.pub, daemon.ModuleConfig{Name: "evil", Path: v1Path})
		v.running(t, "evil", "1.0.0")
		topic := fleet.Topics{Fleet: "rel"}.Module("evil")

		// The fix: version 2.0.0 reaches /fixed, which 1.0.0 cannot.
		fix := release("evil", 2, signedModule(t, "evil-2.0.0", k.trusted), k.trusted)
		v.release(t, fix)
		v.event(t, runtime.EventModuleInstalled, "version 2.0.0")
		v.running(t, "evil", "2.0.0")
		v.push(t, 1, `{"fixed":{"a":true}}`, k.trusted)
		v.state(t, "target 1 reached", func(s fleet.StateReport) bool { return s.Converged && s.TargetVersion == 1 })

		// Refused, each with an event that says why.
		v4 := signedModule(t, "evil-4.0.0", k.trusted)
		tampered := release("evil", 12, v4, k.trusted)
		tampered.Version = 13
		for _, tc := range []struct {
			name string
			env  fleet.ReleaseEnvelope
			want string
		}{
			{"forged", release("evil", 10, v4, k.stranger), "does not trust"},
			{"unsigned", release("evil", 11, v4, nil), "accepts only module releases signed by a trusted operator key"},
			{"tampered", tampered, "signature does not match"},
			{"older", release("evil", 1, signedModule(t, "evil-1.0.0", k.trusted), k.trusted), "older than the version 2 accepted"},
			{"unsigned code", release("evil", 14, signedModule(t, "evil-4.0.0", nil), k.trusted), "not signed"},
		} {
			v.release(t, tc.env)
			v.event(t, runtime.EventModuleRefused, tc.want)
		}
		var m map[string]any
		b, _ := json.Marshal(release("evil", 15, v4, k.trusted))
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		m["sha256"] = fix.SHA256 // another module's hash
		mismatch, _ := json.Marshal(m)
		v.publishRaw(t, topic, mismatch)
		v.event(t, runtime.EventModuleRefused, "changed after the envelope was made")
		v.publishRaw(t, topic, []byte(`{"format":1,"module":"evil","version":16,"wasm":"`+strings.Repeat("A", fleet.MaxReleasePayload)+`"}`))
		v.event(t, runtime.EventModuleRefused, fmt.Sprintf("over the %d-byte limit", fleet.MaxReleasePayload))
		v.running(t, "evil", "2.0.0")

		// A release that traps on every run is rolled back to 2.0.0.
		v.release(t, release("evil", 20, signedModule(t, "evil-3.0.0", k.trusted), k.trusted))
		v.event(t, runtime.EventModuleInstalled, "version 3.0.0")
		v.push(t, 2, `{"fixed":{"b":true}}`, k.trusted)
		v.event(t, runtime.EventModuleRolledBack, "rolled back to version 2.0.0")
		v.state(t, "target 2 reached on 2.0.0", func(s fleet.StateReport) bool {
			return s.Converged && s.TargetVersion == 2 && s.Modules["evil"] == "2.0.0"
		})

		// Released while the device is offline: installed when it is back.
		d.stop()
		v.release(t, release("evil", 21, v4, k.trusted))
		d.start()
		v.event(t, runtime.EventModuleInstalled, "version 4.0.0")
		v.running(t, "evil", "4.0.0")

		// An old release replayed while it is offline: refused after the
		// restart, and the released 4.0.0 runs, not the configured file.
		d.stop()
		v.release(t, fix)
		d.start()
		v.event(t, runtime.EventModuleRefused, "release version 2 refused: older than the version 21 accepted")
		v.running(t, "evil", "4.0.0")
	})
}

// A device configured for a module it has no code for gets it by release:
// a Go module of a few MB, published, installed and used.
func TestReleaseGoModule(t *testing.T) {
	relay, err := wasmbuild.Cached("github.com/tern-iot/tern/plugins/relay")
	if err != nil {
		t.Fatal(err)
	}
	forEachBroker(t, func(t *testing.T, url string) {
		k := newKeys(t)
		signed, err := modfile.Sign(relay, k.trusted)
		if err != nil {
			t.Fatal(err)
		}
		v := watchFleet(t, url)
		mod := daemon.ModuleConfig{Name: "relay", Config: map[string]any{"lines": map[string]string{"heater": "GPIO17"}}}
		mod.Grants.GPIO = []string{"GPIO17"}
		d := newTernd(t, url, k.pub, mod)
		v.event(t, runtime.EventModuleError, "has no code configured and none installed")

		start := time.Now()
		v.release(t, release("relay", 1, signed, k.trusted))
		published := time.Since(start)
		// Compiling the 3.4 MB Go module takes seconds, and much longer
		// under the race detector on a busy machine.
		v.eventWithin(t, runtime.EventModuleInstalled, "replacing version none", 3*time.Minute)
		t.Logf("release of a %.1f MB module: published in %v, installed %v after the publish started",
			float64(len(signed))/1e6, published.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		v.push(t, 1, `{"relays":{"heater":true}}`, k.trusted)
		v.state(t, "the heater on", func(s fleet.StateReport) bool { return s.Converged && s.TargetVersion == 1 })
		if l, _ := d.gpio.Level("GPIO17"); l != gpio.High {
			t.Errorf("GPIO17 is %v after converging; the released relay module should have switched it on", l)
		}
	})
}
