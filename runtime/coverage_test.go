package runtime_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/internal/testbound"
	"github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/runtime/store/backend"
)

// A device whose only module did not load holds a target its store says
// is met; it never sensed the fan, so it must not say it converged.
func TestMissingModuleIsNotConverged(t *testing.T) {
	r := newRig(t)
	a, stop := r.start(t, &recorder{}, true)
	if err := a.SetTarget(2, json.RawMessage(`{"relays":{"fan":true}}`)); err != nil {
		t.Fatal(err)
	}
	testbound.WaitFor(t, "convergence", func() bool { return a.Status().Converged })
	stop()

	// Power cut; at the next start the relay module's code is refused.
	r.gpio = sim.NewGPIO("GPIO17", "GPIO22", "GPIO27")
	st, err := backend.Open(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	rep := &recorder{}
	a2, _ := runAgent(t, runtime.Options{
		Store: st, GPIO: r.gpio, CacheDir: r.cache, Reporter: rep, Logger: testLogger(t),
		Modules: []runtime.ModuleSpec{{Name: "relay", Wasm: []byte("\x00asm\x01\x00\x00\x00\x01\xff")}},
		// With no module loaded nothing senses, and the loop steps only
		// when something is due: here, a heartbeat every 50 ms.
		Heartbeat: 50 * time.Millisecond,
	})
	testbound.WaitFor(t, "the reason in an event", func() bool {
		_, ok := rep.find(runtime.EventPlanFailed, "no loaded module senses or sets /relays/fan")
		return ok
	})
	testbound.WaitFor(t, "the agent to step", func() bool { return a2.Steps() > 1 })
	s := a2.Status()
	if s.Converged {
		t.Fatalf("converged with its only module missing: %+v", s)
	}
	if !slices.Contains(s.Unhandled, "/relays/fan") {
		t.Errorf("status unhandled = %q, want /relays/fan", s.Unhandled)
	}
	if _, ok := s.MissingModules["relay"]; !ok {
		t.Errorf("status missing_modules = %v, want relay", s.MissingModules)
	}
	if !strings.Contains(s.Error, "relay") {
		t.Errorf("status error %q does not name the missing module", s.Error)
	}
	if _, ok := rep.find(runtime.EventConverged, ""); ok {
		t.Error("a converged event was sent")
	}
	if level(r.gpio, "GPIO27") != gpio.Low {
		t.Error("the fan's line was driven")
	}
	// The reason is told once, not at every tick.
	n := a2.Steps()
	testbound.WaitFor(t, "more steps", func() bool { return a2.Steps() > n+2 })
	rep.mu.Lock()
	told := 0
	for _, e := range rep.events {
		if e.Kind == runtime.EventPlanFailed {
			told++
		}
	}
	rep.mu.Unlock()
	if told != 1 {
		t.Errorf("%d plan.failed events, want 1", told)
	}
}

// A target key no module handles keeps the device from converging, and
// the status names it.
func TestUnhandledPathIsReported(t *testing.T) {
	r := newRig(t)
	rep := &recorder{}
	a, _ := r.start(t, rep, true)
	if err := a.SetTarget(1, json.RawMessage(`{"relays":{"fan":true},"valves":{"main":"open"}}`)); err != nil {
		t.Fatal(err)
	}
	testbound.WaitFor(t, "unhandled path in the status", func() bool {
		return slices.Contains(a.Status().Unhandled, "/valves/main")
	})
	if a.Status().Converged {
		t.Fatal("converged with /valves/main unhandled")
	}
	testbound.WaitFor(t, "the partial plan switched the fan on", func() bool { return level(r.gpio, "GPIO27") == gpio.High })
	// A new target without it converges. (The fan is on already: the
	// partial plan switched it on. The new target switches it off, so
	// that there is a plan to make and a plan.replan to say why.)
	if err := a.SetTarget(2, json.RawMessage(`{"relays":{"fan":false}}`)); err != nil {
		t.Fatal(err)
	}
	testbound.WaitFor(t, "convergence", func() bool { return a.Status().Converged })
	if u := a.Status().Unhandled; len(u) != 0 {
		t.Errorf("unhandled %q after the path left the target", u)
	}
	if _, ok := rep.find(runtime.EventReplan, "a new target arrived: version 2 replaces 1"); !ok {
		t.Error("no plan.replan naming the new target")
	}
}
