package wasmhost

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/internal/testbound"
	"github.com/tern-iot/tern/runtime/internal/wasmtest"
	"github.com/tern-iot/tern/sdk/abi"
)

// gate is a board whose GPIO writes wait until the test lets each go: a
// call into a module that stays in progress for as long as a test wants.
type gate struct {
	entered chan string   // a write began, on this line
	open    chan struct{} // lets one write finish
}

func newGate() *gate { return &gate{entered: make(chan string, 8), open: make(chan struct{})} }

func (g *gate) Pin(name string) (gpio.Pin, error) { return gatePin{g, name}, nil }

type gatePin struct {
	g    *gate
	name string
}

func (p gatePin) Name() string                            { return p.name }
func (p gatePin) Read() (gpio.Level, error)               { return gpio.Low, nil }
func (p gatePin) In(gpio.Pull) error                      { return nil }
func (p gatePin) WaitForEdge(time.Duration) (bool, error) { return false, nil }
func (p gatePin) Out(gpio.Level) error {
	p.g.entered <- p.name
	<-p.g.open
	return nil
}

// instances counts a module's instances: its tern_configure, which every
// new instance runs once, logs "flood!".
type instances struct{ n atomic.Int64 }

func (c *instances) Enabled(context.Context, slog.Level) bool { return true }
func (c *instances) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *instances) WithGroup(string) slog.Handler            { return c }
func (c *instances) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "flood!" {
		c.n.Add(1)
	}
	return nil
}

// gatedModule loads a module whose run writes GPIO17 through g, on a host
// that counts its instances.
func gatedModule(t *testing.T, g *gate) (*Module, *instances) {
	t.Helper()
	ctx := context.Background()
	count := &instances{}
	h, err := New(ctx, Options{GPIO: g, Logger: slog.New(count)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(ctx) })
	text := wasmtest.Module{
		Config: `(call $log (i32.const 0) (i32.const 1112) (i32.const 6)) ` + wasmtest.Packed(wasmtest.OutNull, 2),
		Run:    `(drop (call $gpio_write (i32.const 1100) (i32.const 6) (i32.const 1))) ` + wasmtest.Packed(wasmtest.OutNull, 2),
	}.Text()
	m, err := h.Load(ctx, wasmtest.Assemble(t, text), Grants{GPIO: []string{"GPIO17"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := count.n.Load(); n != 1 {
		t.Fatalf("%d instances after loading, want 1 (the one that read the manifest)", n)
	}
	return m, count
}

func run(ctx context.Context, m *Module) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := m.Call(ctx, PhaseRun, "run", abi.Call{Job: "poke", Path: "/evil/x"})
		done <- err
	}()
	return done
}

func receive[T any](t *testing.T, what string, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(testbound.Hang):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// A call that finds the instance busy waits for it, rather than make
// another, when making one took longer than the wait: the jobs of one
// plan, running in parallel, share an instance.
func TestPoolWaitsForABusyInstance(t *testing.T) {
	g := newGate()
	m, count := gatedModule(t, g)
	m.mu.Lock()
	m.made = time.Hour // making an instance "takes" longer than any wait here
	m.mu.Unlock()
	ctx := context.Background()
	first := run(ctx, m)
	receive(t, "the first call's write", g.entered)
	second := run(ctx, m)
	// The second call holds its slot and, no instance being idle, waits.
	testbound.WaitFor(t, "the second call to wait for an instance", func() bool { return len(m.slots) == 2 })
	g.open <- struct{}{} // the first call returns its instance
	receive(t, "the second call's write", g.entered)
	g.open <- struct{}{}
	for _, done := range []<-chan error{first, second} {
		if err := receive(t, "a call's end", done); err != nil {
			t.Fatal(err)
		}
	}
	if n := count.n.Load(); n != 1 {
		t.Fatalf("%d instances, want 1: the second call should have waited for the first's", n)
	}
}

// A call held up (by its hardware, a slow sensor) holds up another no
// longer than making an instance takes: the other gets an instance of its
// own.
func TestPoolGrowsPastASlowCall(t *testing.T) {
	g := newGate()
	m, count := gatedModule(t, g)
	ctx := context.Background()
	slow := run(ctx, m)
	receive(t, "the slow call's write", g.entered)
	other := run(ctx, m)
	receive(t, "the other call's write, in an instance of its own", g.entered)
	g.open <- struct{}{}
	g.open <- struct{}{}
	for _, done := range []<-chan error{slow, other} {
		if err := receive(t, "a call's end", done); err != nil {
			t.Fatal(err)
		}
	}
	if n := count.n.Load(); n != 2 {
		t.Fatalf("%d instances, want 2", n)
	}
	// Both went back to the pool, and serve the calls after.
	for range 2 {
		done := run(ctx, m)
		receive(t, "a write", g.entered)
		g.open <- struct{}{}
		if err := receive(t, "a call's end", done); err != nil {
			t.Fatal(err)
		}
	}
	if n := count.n.Load(); n != 2 {
		t.Fatalf("%d instances after more calls, want still 2", n)
	}
}

// A call whose deadline passes while it waits for an instance says so,
// and blames no module.
func TestPoolWaitEndsWithTheCall(t *testing.T) {
	g := newGate()
	m, _ := gatedModule(t, g)
	m.mu.Lock()
	m.made = time.Hour
	m.mu.Unlock()
	first := run(context.Background(), m)
	receive(t, "the first call's write", g.entered)
	ctx, cancel := context.WithCancel(context.Background())
	second := run(ctx, m)
	testbound.WaitFor(t, "the second call to wait for an instance", func() bool { return len(m.slots) == 2 })
	cancel()
	err := receive(t, "the second call's end", second)
	if err == nil || !errors.Is(err, context.Canceled) || errors.Is(err, ErrCall) {
		t.Fatalf("second call: %v, want it canceled while waiting", err)
	}
	g.open <- struct{}{}
	if err := receive(t, "the first call's end", first); err != nil {
		t.Fatal(err)
	}
}
