package testbench_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/boards"
	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/internal/daemon"
	"github.com/tern-iot/tern/internal/testbound"
	"github.com/tern-iot/tern/internal/wasmbuild"
)

// sharedCache is the compilation cache of every ternd the package's tests
// start in process: the relay module compiles once, not once per device
// (a minute each under the race detector on a busy machine).
var sharedCache string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "testbench-cache-")
	if err != nil {
		panic(err)
	}
	sharedCache = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// device is one ternd on a simulated board, run in-process so the test
// can probe its GPIO lines.
type device struct {
	cfg  daemon.Config
	gpio *sim.GPIO
	stop func()
}

func startDevice(t testing.TB, broker, dataDir string) *device {
	t.Helper()
	return startDeviceLogging(t, broker, dataDir, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})))
}

func startDeviceLogging(t testing.TB, broker, dataDir string, log *slog.Logger) *device {
	t.Helper()
	wasm, err := wasmbuild.Cached("github.com/tern-iot/tern/plugins/relay")
	if err != nil {
		t.Fatal(err)
	}
	modPath := filepath.Join(t.TempDir(), "relay.wasm")
	if err := os.WriteFile(modPath, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	board, err := boards.Lookup("sim")
	if err != nil {
		t.Fatal(err)
	}
	d := &device{gpio: sim.NewGPIO(board.Lines()...)}
	d.cfg = daemon.Config{
		Device: "pi-001", Fleet: "e2e", Broker: broker, Board: "sim", DataDir: dataDir, CacheDir: sharedCache,
		Modules: []daemon.ModuleConfig{{Name: "relay", Path: modPath, Config: map[string]any{
			"lines": map[string]string{"heater": "GPIO17", "fan": "GPIO27", "lamp": "GPIO22"},
		}}},
	}
	d.cfg.Modules[0].Grants.GPIO = []string{"GPIO17", "GPIO27"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- daemon.Run(ctx, d.cfg, &daemon.Hardware{GPIO: d.gpio}, log) }()
	d.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ternd stopped with %v", err)
		}
	}
	t.Cleanup(func() {
		if ctx.Err() == nil {
			d.stop()
		}
	})
	return d
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func operator(t testing.TB, broker string) *fleet.Operator {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	op, err := fleet.DialOperator(ctx, fleet.OperatorOptions{Broker: broker, Topics: fleet.Topics{Fleet: "e2e"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(op.Close)
	return op
}

// waitReport waits for a state report that satisfies ok; the bound is
// one on a hang (testbound).
func waitReport(t *testing.T, states <-chan fleet.StateReport, what string, ok func(fleet.StateReport) bool) fleet.StateReport {
	t.Helper()
	timeout := time.After(testbound.Hang)
	for {
		select {
		case s := <-states:
			if ok(s) {
				return s
			}
		case <-timeout:
			t.Fatalf("timed out waiting for a report: %s", what)
		}
	}
}

func level(g *sim.GPIO, line string) gpio.Level {
	l, _ := g.Level(line)
	return l
}

func push(t testing.TB, op *fleet.Operator, version uint64, target string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	env := fleet.TargetEnvelope{Format: fleet.Format, Version: version, Target: json.RawMessage(target)}
	if err := op.PushTarget(ctx, "pi-001", env); err != nil {
		t.Fatal(err)
	}
}

// TestEndToEnd runs the whole skeleton through both brokers.
func TestEndToEnd(t *testing.T) {
	for name, broker := range map[string]func(testing.TB) string{
		"embedded":  fleettest.Embedded,
		"mosquitto": fleettest.Mosquitto,
	} {
		t.Run(name, func(t *testing.T) {
			url := broker(t)
			op := operator(t, url)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			states, err := op.WatchStates(ctx, "pi-001")
			if err != nil {
				t.Fatal(err)
			}
			events, err := op.WatchEvents(ctx, "pi-001")
			if err != nil {
				t.Fatal(err)
			}

			// The target is pushed before the device exists: retained.
			push(t, op, 10, `{"relays":{"heater":true,"fan":true}}`)
			dir := t.TempDir()
			d := startDevice(t, url, dir)
			s := waitReport(t, states, "converged on v10", func(s fleet.StateReport) bool { return s.Converged && s.TargetVersion == 10 })
			if level(d.gpio, "GPIO17") != gpio.High || level(d.gpio, "GPIO27") != gpio.High {
				t.Fatal("reported converged but the relay lines are not high")
			}
			if string(s.State) != `{"relays":{"fan":true,"heater":true}}` {
				t.Fatalf("reported state %s", s.State)
			}

			// A line the module was not granted: the failure reaches the operator.
			push(t, op, 11, `{"relays":{"lamp":true,"fan":false}}`)
			waitReport(t, states, "the not-granted failure", func(s fleet.StateReport) bool {
				return s.TargetVersion == 11 && strings.Contains(s.Error, "not granted")
			})
			if n := d.gpio.Writes("GPIO22"); n != 0 {
				t.Fatalf("ungranted GPIO22 written %d times", n)
			}
			sawFailure := false
			for !sawFailure {
				select {
				case e := <-events:
					sawFailure = e.Kind == "task.failed" && strings.Contains(e.Message, "not granted")
				case <-time.After(10 * time.Second):
					t.Fatal("no task.failed event naming the grant")
				}
			}

			// An older version is refused; the agent keeps running and
			// converges on the next good target.
			push(t, op, 9, `{"relays":{"heater":false}}`)
			push(t, op, 12, `{"relays":{"lamp":null,"heater":false,"fan":true}}`)
			waitReport(t, states, "converged on v12", func(s fleet.StateReport) bool { return s.Converged && s.TargetVersion == 12 })
			if level(d.gpio, "GPIO17") != gpio.Low || level(d.gpio, "GPIO27") != gpio.High {
				t.Fatal("lines do not match v12")
			}

			// Restart without a broker: the target is kept, a fresh board
			// (all lines low after the power cut) converges again offline.
			d.stop()
			d2 := startDevice(t, "", dir)
			deadline := time.Now().Add(30 * time.Second)
			for level(d2.gpio, "GPIO27") != gpio.High {
				if time.Now().After(deadline) {
					t.Fatal("restarted agent did not converge offline")
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
