package daemon_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/internal/daemon"
	"github.com/tern-iot/tern/internal/modfile"
	"github.com/tern-iot/tern/internal/wasmbuild"
)

// A device restarted while a newer target waits for it, retained on the
// broker, acts on that one first: the fan its stored target would switch
// on, and the newer one off, is never switched on at boot.
func TestBootGraceActsOnTheRetainedTarget(t *testing.T) {
	fanOnThenStopped(t, func(t *testing.T, d *ternd, v *fleetView, k keys) {
		v.push(t, 2, `{"relays":{"fan":false}}`, k.trusted)
		// A power cut: the lines come back low.
		d.gpio = sim.NewGPIO("GPIO17", "GPIO27")
		var mu sync.Mutex
		var levels []gpio.Level
		if err := d.gpio.Watch("GPIO27", func(l gpio.Level) { mu.Lock(); levels = append(levels, l); mu.Unlock() }); err != nil {
			t.Fatal(err)
		}
		d.start()
		v.state(t, "target 2 reached after the restart", func(s fleet.StateReport) bool { return s.Converged && s.TargetVersion == 2 })
		mu.Lock()
		defer mu.Unlock()
		if len(levels) > 0 {
			t.Fatalf("the fan's line changed at boot: %v; the stored target 1 was acted on before the retained target 2", levels)
		}
	})
}

// Offline (a broker configured but unreachable), the device acts on its
// stored target at once, not after the grace.
func TestBootGraceOfflineActsAtOnce(t *testing.T) {
	fanOnThenStopped(t, func(t *testing.T, d *ternd, v *fleetView, k keys) {
		// A port nobody listens on, and a grace far longer than any wait
		// of this test: the fan comes on again only if ternd does not wait.
		d.cfg.Broker = "tcp://127.0.0.1:1"
		grace := daemon.Duration(time.Hour)
		d.cfg.BootGrace = &grace
		d.gpio = sim.NewGPIO("GPIO17", "GPIO27")
		on := make(chan struct{})
		var once sync.Once
		d.gpio.Watch("GPIO27", func(l gpio.Level) {
			if l == gpio.High {
				once.Do(func() { close(on) })
			}
		})
		d.start()
		select {
		case <-on:
		case <-time.After(wait):
			t.Fatalf("offline, the stored target was not acted on within %v", wait)
		}
	})
}

// fanOnThenStopped runs then, on each broker, with a ternd that ran the
// relay module, converged on target 1 (the fan on) and was stopped.
func fanOnThenStopped(t *testing.T, then func(t *testing.T, d *ternd, v *fleetView, k keys)) {
	relay, err := wasmbuild.Cached("github.com/tern-iot/tern/plugins/relay")
	if err != nil {
		t.Fatal(err)
	}
	forEachBroker(t, func(t *testing.T, url string) {
		k := newKeys(t)
		d := relayTernd(t, url, k, relay)
		v := watchFleet(t, url)
		v.push(t, 1, `{"relays":{"fan":true}}`, k.trusted)
		// The first start compiles the Go relay module: seconds, minutes
		// under the race detector on a busy machine.
		v.stateWithin(t, "the fan on (target 1)", 5*time.Minute, func(s fleet.StateReport) bool { return s.Converged && s.TargetVersion == 1 })
		d.stop()
		then(t, d, v, k)
	})
}

// relayTernd is a ternd that runs the relay module (fan on GPIO27), signed
// with k's trusted key.
func relayTernd(t *testing.T, url string, k keys, relay []byte) *ternd {
	t.Helper()
	signed, err := modfile.Sign(relay, k.trusted)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "relay.wasm")
	if err := os.WriteFile(path, signed, 0o644); err != nil {
		t.Fatal(err)
	}
	mod := daemon.ModuleConfig{Name: "relay", Path: path, Config: map[string]any{"lines": map[string]string{"fan": "GPIO27"}}}
	mod.Grants.GPIO = []string{"GPIO27"}
	return newTernd(t, url, k.pub, mod)
}
