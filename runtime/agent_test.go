package runtime_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/internal/testbound"
	"github.com/tern-iot/tern/internal/wasmbuild"
	"github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/runtime/store/backend"
)

// recorder is a Reporter that keeps what it was given.
type recorder struct {
	mu     sync.Mutex
	states []runtime.Status
	events []runtime.Event
}

func (r *recorder) PublishState(_ context.Context, s runtime.Status) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states = append(r.states, s)
	return nil
}

func (r *recorder) PublishEvent(_ context.Context, e runtime.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	return nil
}

func (r *recorder) find(kind runtime.EventKind, substr string) (runtime.Event, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e.Kind == kind && strings.Contains(e.Message+" "+e.Path, substr) {
			return e, true
		}
	}
	return runtime.Event{}, false
}

type rig struct {
	dir   string
	gpio  *sim.GPIO
	cache string
}

// sharedCache is one compilation cache for all agents of the tests:
// compiling under the race detector takes seconds.
var sharedCache string

func TestMain(m *testing.M) {
	// The test binary is also the compile child of the tests that isolate
	// compiling (Options.CompileCommand), as ternd is its own.
	if len(os.Args) > 1 && os.Args[1] == "compile-module" {
		os.Exit(runtime.ServeCompile(os.Args[2:], os.Stdin, os.Stderr))
	}
	dir, err := os.MkdirTemp("", "runtime-cache-")
	if err != nil {
		panic(err)
	}
	sharedCache = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func newRig(t *testing.T) *rig {
	return &rig{dir: t.TempDir(), gpio: sim.NewGPIO("GPIO17", "GPIO22", "GPIO27"), cache: sharedCache}
}

// start opens the store and starts an agent on it; stop undoes both.
func (r *rig) start(t *testing.T, rep runtime.Reporter, withCode bool) (a *runtime.Agent, stop func()) {
	t.Helper()
	return r.startOpts(t, rep, withCode, nil)
}

// startWith is start with the relay's code and options changed by edit.
func (r *rig) startWith(t *testing.T, rep runtime.Reporter, edit func(*runtime.Options)) (a *runtime.Agent, stop func()) {
	t.Helper()
	return r.startOpts(t, rep, true, edit)
}

func (r *rig) startOpts(t *testing.T, rep runtime.Reporter, withCode bool, edit func(*runtime.Options)) (a *runtime.Agent, stop func()) {
	t.Helper()
	wasm, err := wasmbuild.Cached("github.com/tern-iot/tern/plugins/relay")
	if err != nil {
		t.Fatal(err)
	}
	if !withCode {
		wasm = nil
	}
	st, err := backend.Open(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	opts := runtime.Options{
		Store: st, GPIO: r.gpio, CacheDir: r.cache, Reporter: rep, Logger: testLogger(t),
		RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		Modules: []runtime.ModuleSpec{{
			Name: "relay", Wasm: wasm,
			Grants: runtime.Grants{GPIO: []string{"GPIO17", "GPIO27"}},
			Config: json.RawMessage(`{"lines":{"heater":"GPIO17","fan":"GPIO27","lamp":"GPIO22"}}`),
		}},
	}
	if edit != nil {
		edit(&opts)
	}
	return runAgent(t, opts)
}

// runAgent creates an agent with opts and runs it. stop (also run at the
// end of the test) ends the run and closes the agent and opts.Store.
func runAgent(t testing.TB, opts runtime.Options) (a *runtime.Agent, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a, err := runtime.New(ctx, opts)
	if err != nil {
		cancel()
		opts.Store.Close()
		t.Fatalf("runtime.New: %v", err)
	}
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	stop = sync.OnceFunc(func() {
		cancel()
		<-done
		a.Close(context.Background())
		opts.Store.Close()
	})
	t.Cleanup(stop)
	return a, stop
}

func level(g *sim.GPIO, line string) gpio.Level {
	l, _ := g.Level(line)
	return l
}

func TestAgentConvergesAndKeepsItsTargetAcrossRestart(t *testing.T) {
	r := newRig(t)
	rep := &recorder{}
	a, stop := r.start(t, rep, true)
	if err := a.SetTarget(1, json.RawMessage(`{"relays":{"heater":true,"fan":true}}`)); err != nil {
		t.Fatal(err)
	}
	testbound.WaitFor(t, "convergence", func() bool { return a.Status().Converged })
	if level(r.gpio, "GPIO17") != gpio.High || level(r.gpio, "GPIO27") != gpio.High {
		t.Fatal("relay lines not driven high")
	}
	for _, k := range []runtime.EventKind{runtime.EventTargetAccepted, runtime.EventPlanFound, runtime.EventTaskStarted, runtime.EventTaskDone, runtime.EventConverged} {
		if _, ok := rep.find(k, ""); !ok {
			t.Errorf("no %s event", k)
		}
	}

	// Drift: someone switches the heater off by hand; the agent switches it back.
	r.gpio.Pin("GPIO17") // the line stays an output; simulate a manual override through the contract
	if p, _ := r.gpio.Pin("GPIO17"); p != nil {
		p.Out(gpio.Low)
	}
	testbound.WaitFor(t, "drift event", func() bool { _, ok := rep.find(runtime.EventDrift, "/relays/heater"); return ok })
	testbound.WaitFor(t, "re-convergence after drift", func() bool { return level(r.gpio, "GPIO17") == gpio.High && a.Status().Converged })

	// Older targets are refused with an event; the same version is a duplicate.
	if err := a.SetTarget(1, json.RawMessage(`{"relays":{"heater":true,"fan":true}}`)); err != nil {
		t.Fatalf("duplicate: %v", err)
	}
	stop()

	// Power cut: the board's lines reset; the agent restarts with no
	// broker and no code given, and converges from what it stored.
	r.gpio = sim.NewGPIO("GPIO17", "GPIO22", "GPIO27")
	a2, stop2 := r.start(t, nil, false)
	defer stop2()
	if _, v := a2.Target(); v != 1 {
		t.Fatalf("restored target version %d, want 1", v)
	}
	testbound.WaitFor(t, "convergence after restart", func() bool { return a2.Status().Converged })
	if level(r.gpio, "GPIO17") != gpio.High || level(r.gpio, "GPIO27") != gpio.High {
		t.Fatal("relay lines not driven high after restart")
	}
	if err := a2.SetTarget(0+1-1, json.RawMessage(`{}`)); err == nil {
		t.Fatal("older target accepted")
	}
}

func TestUngrantedLineIsReportedAndAgentKeepsRunning(t *testing.T) {
	r := newRig(t)
	rep := &recorder{}
	a, stop := r.start(t, rep, true)
	defer stop()
	// lamp is wired to GPIO22, which the device did not grant to the module.
	if err := a.SetTarget(7, json.RawMessage(`{"relays":{"lamp":true,"fan":true}}`)); err != nil {
		t.Fatal(err)
	}
	testbound.WaitFor(t, "task failure naming the grant", func() bool {
		_, ok := rep.find(runtime.EventTaskFailed, "not granted")
		return ok
	})
	testbound.WaitFor(t, "failed status", func() bool {
		s := a.Status()
		return s.Phase == runtime.PhaseFailed && strings.Contains(s.Error, "not granted")
	})
	// The independent branch still ran, the lamp's line was never touched.
	testbound.WaitFor(t, "fan on", func() bool { return level(r.gpio, "GPIO27") == gpio.High })
	if n := r.gpio.Writes("GPIO22"); n != 0 {
		t.Fatalf("GPIO22 written %d times", n)
	}
	// The agent keeps running: a new target without the lamp converges.
	if err := a.SetTarget(8, json.RawMessage(`{"relays":{"lamp":null,"fan":false}}`)); err != nil {
		t.Fatal(err)
	}
	testbound.WaitFor(t, "convergence after the bad target", func() bool { return a.Status().Converged })
	if level(r.gpio, "GPIO27") != gpio.Low {
		t.Fatal("fan still on")
	}
}

func TestBadTargetsAreRefused(t *testing.T) {
	r := newRig(t)
	rep := &recorder{}
	a, stop := r.start(t, rep, true)
	defer stop()
	for _, doc := range []string{`[1,2]`, `"x"`, `{"a":`, ``} {
		if err := a.SetTarget(3, json.RawMessage(doc)); err == nil {
			t.Errorf("target %q accepted", doc)
		}
	}
	if err := a.SetTarget(5, json.RawMessage(`{"relays":{"fan":true}}`)); err != nil {
		t.Fatal(err)
	}
	if err := a.SetTarget(4, json.RawMessage(`{"relays":{"fan":false}}`)); err == nil {
		t.Fatal("older target accepted")
	}
	testbound.WaitFor(t, "refusal event", func() bool { _, ok := rep.find(runtime.EventTargetRefused, "holding 5"); return ok })
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
