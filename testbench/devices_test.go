package testbench

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/hal/serialdev"
	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/internal/testbound"
	"github.com/tern-iot/tern/internal/wasmbuild"
	"github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/runtime/store/backend"
)

// agentWith runs an agent with one module on the given hardware and
// returns a function that reads the sensed state.
func agentWith(t *testing.T, opts runtime.Options, importPath string, spec runtime.ModuleSpec) func() map[string]any {
	t.Helper()
	a := runAgent(t, opts, importPath, spec)
	return func() map[string]any {
		var s map[string]any
		json.Unmarshal(a.Status().State, &s)
		return s
	}
}

// runAgent runs an agent with one module, built from importPath, until the
// test ends.
func runAgent(t *testing.T, opts runtime.Options, importPath string, spec runtime.ModuleSpec) *runtime.Agent {
	t.Helper()
	wasm, err := wasmbuild.Cached(importPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := backend.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	spec.Wasm = wasm
	opts.Store, opts.Modules = st, []runtime.ModuleSpec{spec}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := runtime.New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; a.Close(context.Background()); st.Close() })
	return a
}

// A push button to ground on GPIO5 (pull-up, active low), pressed and
// released by the simulated world, seen by the button module.
func TestButtonOnSimBoard(t *testing.T) {
	lines := sim.NewGPIO("GPIO5")
	state := agentWith(t, runtime.Options{GPIO: lines}, "github.com/tern-iot/tern/plugins/button", runtime.ModuleSpec{
		Name: "button", Grants: runtime.Grants{GPIO: []string{"GPIO5"}},
		Config: json.RawMessage(`{"buttons":{"door":{"line":"GPIO5","active_low":true}}}`),
	})
	door := func() map[string]any {
		b, _ := state()["buttons"].(map[string]any)
		d, _ := b["door"].(map[string]any)
		return d
	}
	testbound.WaitFor(t, "the button reported released", func() bool { return door()["pressed"] == false })
	lines.Drive("GPIO5", gpio.Low) // pressed
	testbound.WaitFor(t, "the press", func() bool { return door()["pressed"] == true })
	lines.Release("GPIO5")
	testbound.WaitFor(t, "the release, one press counted", func() bool { return door()["pressed"] == false && door()["presses"] == 1.0 })
}

// A GPS receiver on a serial port (a real pseudo-terminal, opened by the
// real serial backend), read by the gps module.
func TestGPSOverSerial(t *testing.T) {
	pty, err := sim.NewPTY()
	if err != nil {
		t.Fatal(err)
	}
	defer pty.Close()
	gps := &sim.NMEAGPS{Lat: 48.1173, Lon: 11.5167, Fix: true, Time: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)}
	pty.Emit(100*time.Millisecond, gps.Sentences)
	state := agentWith(t, runtime.Options{Serial: serialdev.Opener{Devices: map[string]string{"serial0": pty.Path}}},
		"github.com/tern-iot/tern/plugins/gps", runtime.ModuleSpec{
			Name: "gps", Grants: runtime.Grants{Serial: []string{"serial0@9600"}},
			Config: json.RawMessage(`{"port":"serial0","baud":9600}`),
		})
	testbound.WaitFor(t, "a fix", func() bool {
		p, _ := state()["position"].(map[string]any)
		lat, _ := p["lat"].(float64)
		lon, _ := p["lon"].(float64)
		return p["fix"] == true && math.Abs(lat-48.1173) < 1e-3 && math.Abs(lon-11.5167) < 1e-3
	})
}

// A TMP102 on the simulated I2C bus, read by the temperature module.
func TestTemperatureOnSimBoard(t *testing.T) {
	bus := sim.NewI2C("i2c1")
	chip := sim.NewTMP102(21.5)
	bus.Attach("i2c1", 0x48, chip)
	state := agentWith(t, runtime.Options{I2C: bus}, "github.com/tern-iot/tern/plugins/temperature", runtime.ModuleSpec{
		Name: "temperature", Grants: runtime.Grants{I2C: []string{"i2c1:0x48"}},
		Config: json.RawMessage(`{"sensors":{"attic":{"bus":"i2c1","address":72}}}`),
	})
	attic := func() any { m, _ := state()["temperatures"].(map[string]any); return m["attic"] }
	testbound.WaitFor(t, "21.5 °C", func() bool { return attic() == 21.5 })
	chip.Set(-3.25)
	testbound.WaitFor(t, "-3.25 °C after the room cooled", func() bool { return attic() == -3.25 })
}
