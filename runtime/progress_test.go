package runtime_test

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/internal/testbound"
	"github.com/tern-iot/tern/internal/wasmbuild"
	"github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/runtime/store"
	"github.com/tern-iot/tern/runtime/store/backend"
)

// gate holds writes to one line until released, to stop a plan mid-way.
type gate struct {
	gpio.Lookup
	line     string
	entered  chan struct{}
	release  chan struct{}
	announce sync.Once
}

type gatedPin struct {
	gpio.Pin
	g *gate
}

func (g *gate) Pin(name string) (gpio.Pin, error) {
	p, err := g.Lookup.Pin(name)
	if err != nil || name != g.line {
		return p, err
	}
	return gatedPin{p, g}, nil
}

func (p gatedPin) Out(l gpio.Level) error {
	p.g.announce.Do(func() { close(p.g.entered) })
	<-p.g.release
	return p.Pin.Out(l)
}

func startAgent(t *testing.T, dir string, lines gpio.Lookup, rep runtime.Reporter) (*runtime.Agent, store.Store, func()) {
	t.Helper()
	wasm, err := wasmbuild.Cached("github.com/tern-iot/tern/plugins/relay")
	if err != nil {
		t.Fatal(err)
	}
	st, err := backend.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, stop := runAgent(t, runtime.Options{
		Store: st, GPIO: lines, CacheDir: sharedCache, Reporter: rep, Logger: testLogger(t),
		Parallelism: 1, RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		Modules: []runtime.ModuleSpec{{
			Name: "relay", Wasm: wasm,
			Grants: runtime.Grants{GPIO: []string{"GPIO17", "GPIO27"}},
			Config: json.RawMessage(`{"lines":{"heater":"GPIO17","fan":"GPIO27"}}`),
		}},
	})
	return a, st, stop
}

// A crash mid-plan: the agent comes back with its target, says the plan
// was cut short, and finishes without redoing the task already done.
func TestCrashMidPlanResumesWithoutRedoingTasks(t *testing.T) {
	lines := sim.NewGPIO("GPIO17", "GPIO27")
	g := &gate{Lookup: lines, line: "GPIO17", entered: make(chan struct{}), release: make(chan struct{})}
	a, st, stop := startAgent(t, t.TempDir(), g, &recorder{})
	if err := a.SetTarget(3, json.RawMessage(`{"relays":{"fan":true,"heater":true}}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.entered: // fan done, heater's write in progress
	case <-time.After(20 * time.Second):
		t.Fatal("the heater's task never started")
	}
	// The power goes now: what is on disk is what a crash leaves.
	disk := map[string][]byte{}
	st.Scan(nil, func(k, v []byte) error { disk[string(k)] = append([]byte(nil), v...); return nil })
	if p := string(disk["plan"]); !strings.Contains(p, `"path":"/relays/fan","status":"done"`) || !strings.Contains(p, `"path":"/relays/heater","status":"pending"`) {
		t.Fatalf("plan progress on disk mid-plan: %s", p)
	}
	close(g.release)
	stop()

	// Restart on exactly that disk (the lines kept their levels: the fan
	// is on, the heater was never switched).
	lines = sim.NewGPIO("GPIO17", "GPIO27")
	if p, _ := lines.Pin("GPIO27"); p != nil {
		p.Out(gpio.High)
	}
	fanWrites := lines.Writes("GPIO27")
	dir := t.TempDir()
	st2, err := backend.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range disk {
		if err := st2.Put([]byte(k), v); err != nil {
			t.Fatal(err)
		}
	}
	st2.Close()
	rep := &recorder{}
	a2, _, stop2 := startAgent(t, dir, lines, rep)
	defer stop2()
	testbound.WaitFor(t, "convergence after the crash", func() bool { return a2.Status().Converged })
	if e, ok := rep.find(runtime.EventPlanResumed, "cut short after 1 of 2 tasks"); !ok {
		t.Fatalf("no plan.resumed event saying what was cut short (%+v)", e)
	}
	if _, ok := rep.find(runtime.EventReplan, "resuming"); !ok {
		t.Error("no plan.replan event")
	}
	if n := lines.Writes("GPIO27"); n != fanWrites {
		t.Fatalf("the fan's task ran again (%d writes, %d before)", n, fanWrites)
	}
	if level(lines, "GPIO17") != gpio.High {
		t.Fatal("the heater's task did not run")
	}
}

// A new target while a plan runs: the agent starts no more of the old
// plan's tasks and plans for the new target at once.
func TestNewTargetSupersedesRunningPlan(t *testing.T) {
	lines := sim.NewGPIO("GPIO17", "GPIO27")
	g := &gate{Lookup: lines, line: "GPIO27", entered: make(chan struct{}), release: make(chan struct{})}
	rep := &recorder{}
	a, _, stop := startAgent(t, t.TempDir(), g, rep)
	defer stop()
	// fan (GPIO27) sorts first and blocks; heater waits its turn.
	if err := a.SetTarget(1, json.RawMessage(`{"relays":{"fan":true,"heater":true}}`)); err != nil {
		t.Fatal(err)
	}
	<-g.entered
	if err := a.SetTarget(2, json.RawMessage(`{"relays":{"fan":true,"heater":false}}`)); err != nil {
		t.Fatal(err)
	}
	close(g.release)
	testbound.WaitFor(t, "convergence on the new target", func() bool {
		s := a.Status()
		return s.Converged && s.TargetVersion == 2
	})
	if _, ok := rep.find(runtime.EventReplan, "a new target arrived"); !ok {
		t.Fatal("no plan.replan event for the new target")
	}
	if n := lines.Writes("GPIO17"); n > 1 {
		t.Fatalf("heater written %d times: the old plan's task ran after the new target", n)
	}
	if level(lines, "GPIO17") != gpio.Low {
		t.Fatal("heater on, the new target wants it off")
	}
}
