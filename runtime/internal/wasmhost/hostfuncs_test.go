package wasmhost_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/runtime/internal/wasmhost"
	"github.com/tern-iot/tern/runtime/internal/wasmtest"
	"github.com/tern-iot/tern/sdk/abi"
)

// reports records what a host notifies and how many lines it warns.
type reports struct {
	t        testing.TB
	mu       sync.Mutex
	notified []string
	warned   int
}

func (r *reports) notify(module, problem string) {
	r.t.Logf("notify %s: %s", module, problem)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notified = append(r.notified, problem)
}

// take returns the notifications since the last take, and the warnings.
func (r *reports) take() ([]string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, w := r.notified, r.warned
	r.notified, r.warned = nil, 0
	return n, w
}

func (r *reports) Enabled(context.Context, slog.Level) bool { return true }
func (r *reports) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *reports) WithGroup(string) slog.Handler            { return r }
func (r *reports) Handle(_ context.Context, rec slog.Record) error {
	if rec.Level >= slog.LevelWarn {
		r.mu.Lock()
		r.warned++
		r.mu.Unlock()
	}
	return nil
}

// loadSensor loads a skeleton module whose sensor runs sense, with the
// GPIO lines of lines and the grants g.
func loadSensor(t *testing.T, sense string, lines *sim.GPIO, g wasmhost.Grants) (*wasmhost.Module, *reports) {
	t.Helper()
	ctx := context.Background()
	rep := &reports{t: t}
	h, err := wasmhost.New(ctx, wasmhost.Options{CacheDir: sharedCache, GPIO: lines, Notify: rep.notify, Logger: slog.New(rep)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(ctx) })
	m, err := h.Load(ctx, wasmtest.Assemble(t, wasmtest.Module{Sense: sense}.Text()), g, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep.take() // what loading said
	return m, rep
}

func sense(t *testing.T, m *wasmhost.Module) float64 {
	t.Helper()
	v, err := m.Call(context.Background(), wasmhost.PhaseSense, "sense", abi.Call{Job: "watch", Path: "/evil_sensor"})
	if err != nil {
		t.Fatal(err)
	}
	var f float64
	if err := json.Unmarshal(v, &f); err != nil {
		t.Fatalf("sense returned %s: %v", v, err)
	}
	return f
}

// returnNumber ends a sensor returning the i32 in local $n as a number.
const returnNumber = `(i64.store (i32.const 2500) (i64.const 0x0400))
	(f64.store (i32.const 2502) (f64.convert_i32_u (local.get $n)))
	(i64.const 0x9c40000000a)` // 2500<<32 | 10

// A sensor that asks for 200 new ungranted lines every call gets one
// report at once, then one summary with the count, and nothing for each
// name.
func TestRefusalsAreSummarised(t *testing.T) {
	const perCall, calls = 200, 50
	// Each write names "L" and six digits of a counter kept at 2900.
	var digits strings.Builder
	for i, div := range []int{100000, 10000, 1000, 100, 10, 1} {
		fmt.Fprintf(&digits, "(i32.store8 (i32.const %d) (i32.add (i32.const 48) (i32.rem_u (i32.div_u (local.get $c) (i32.const %d)) (i32.const 10))))\n", 3001+i, div)
	}
	run := fmt.Sprintf(`(local $i i32) (local $c i32) (local $n i32)
	(i32.store8 (i32.const 3000) (i32.const 76))
	(loop $again
	  (local.set $c (i32.add (i32.load (i32.const 2900)) (i32.const 1)))
	  (i32.store (i32.const 2900) (local.get $c))
	  %s
	  (if (i32.eq (call $gpio_write (i32.const 3000) (i32.const 7) (i32.const 1)) (i32.const %d))
	    (then (local.set $n (i32.add (local.get $n) (i32.const 1)))))
	  (local.set $i (i32.add (local.get $i) (i32.const 1)))
	  (br_if $again (i32.lt_u (local.get $i) (i32.const %d))))
	%s`, digits.String(), abi.ErrnoNotGranted, perCall, returnNumber)
	lines := sim.NewGPIO("GPIO27")
	m, rep := loadSensor(t, run, lines, wasmhost.Grants{GPIO: []string{"GPIO27"}})
	for range calls {
		if n := sense(t, m); n != perCall {
			t.Fatalf("%v of %d writes were refused as not granted", n, perCall)
		}
	}
	got, warned := rep.take()
	if len(got) != 1 || warned != 1 || !strings.Contains(got[0], `asked for GPIO line "L000001", which this device does not grant it`) {
		t.Fatalf("after %d refusals: %d warnings and notified %q; want the first one, once", perCall*calls, warned, got)
	}
	later := time.Now().Add(time.Hour) // past the interval
	m.ReportRefusals(later)
	got, warned = rep.take()
	want := fmt.Sprintf("asked for GPIO lines this device does not grant it %d times in the last", perCall*calls-1)
	if len(got) != 1 || warned != 1 || !strings.Contains(got[0], want) || !strings.Contains(got[0], `"L000002", "L000003", "L000004" and more; at most 3 names are kept`) {
		t.Fatalf("the summary: %d warnings and notified %q; want one saying %q", warned, got, want)
	}
	m.ReportRefusals(later)
	if got, warned := rep.take(); len(got) != 0 || warned != 0 {
		t.Fatalf("a second summary of nothing: %q, %d warnings", got, warned)
	}
}

// writeLoop is a sensor that writes GPIO17 (at Strings) n times and
// returns how many writes failed with ErrnoRate; any other failure traps.
func writeLoop(n int) string {
	return fmt.Sprintf(`(local $i i32) (local $r i32) (local $n i32)
	(loop $again
	  (local.set $r (call $gpio_write (i32.const %d) (i32.const 6) (i32.and (local.get $i) (i32.const 1))))
	  (if (i32.eq (local.get $r) (i32.const %d))
	    (then (local.set $n (i32.add (local.get $n) (i32.const 1))))
	    (else (if (local.get $r) (then (unreachable)))))
	  (local.set $i (i32.add (local.get $i) (i32.const 1)))
	  (br_if $again (i32.lt_u (local.get $i) (i32.const %d))))
	%s`, wasmtest.Strings, abi.ErrnoRate, n, returnNumber)
}

func TestGPIOWriteRate(t *testing.T) {
	lines := sim.NewGPIO("GPIO17")
	m, rep := loadSensor(t, writeLoop(100), lines, wasmhost.Grants{GPIO: []string{"GPIO17@5/h"}})
	if refused := sense(t, m); refused != 95 || lines.Writes("GPIO17") != 5 {
		t.Fatalf("100 writes at 5/h: %v refused, %d reached the line; want 95 and 5", refused, lines.Writes("GPIO17"))
	}
	got, warned := rep.take()
	if len(got) != 1 || warned != 1 || !strings.Contains(got[0], `wrote GPIO line "GPIO17" more often than its grant allows`) ||
		!strings.Contains(got[0], `GPIO17 is granted 5 writes an hour, in bursts of 5: if this hardware can take more, raise it with grants.gpio: ["GPIO17@10/h"] in ternd.yaml`) {
		t.Fatalf("%d warnings and notified %q; want one report naming the line, its rate and what to do", warned, got)
	}
	if refused := sense(t, m); refused != 100 {
		t.Fatalf("a second call: %v writes refused, want all 100", refused)
	}
	if got, _ := rep.take(); len(got) != 0 {
		t.Fatalf("reported again inside the interval: %q", got)
	}
	m.ReportRefusals(time.Now().Add(time.Hour))
	if got, _ := rep.take(); len(got) != 1 || !strings.Contains(got[0], `more often than their grants allow 194 times`) {
		t.Fatalf("the summary: %q", got)
	}
}

// The default rate lets a burst through, then bounds the writes to what
// the time elapsed allows, whatever that was.
func TestGPIOWriteDefaultRate(t *testing.T) {
	const writes = 2000
	lines := sim.NewGPIO("GPIO17")
	m, _ := loadSensor(t, writeLoop(writes), lines, wasmhost.Grants{GPIO: []string{"GPIO17"}})
	start := time.Now()
	refused := sense(t, m)
	elapsed := time.Since(start)
	n := lines.Writes("GPIO17")
	if most := 200 + int(200*elapsed.Seconds()) + 1; n < 200 || n > most || n+int(refused) != writes {
		t.Fatalf("%d writes reached the line and %v were refused in %v; want from 200 to %d, the rest refused", n, refused, elapsed, most)
	}
}

// A log flood is reported once per interval however often the module
// floods, then summarised with a count.
func TestLogFloodReportedOncePerInterval(t *testing.T) {
	flood := `(local $i i32) (local $n i32)
	(loop $again
	  (call $log (i32.const 0) (i32.const 1112) (i32.const 6))
	  (local.set $i (i32.add (local.get $i) (i32.const 1)))
	  (br_if $again (i32.lt_u (local.get $i) (i32.const 2000))))
	` + returnNumber
	m, rep := loadSensor(t, flood, nil, wasmhost.Grants{})
	for range 5 {
		sense(t, m)
	}
	got, _ := rep.take()
	if len(got) != 1 || !strings.Contains(got[0], "log flood: more than 100 lines a second") {
		t.Fatalf("notified %q; want one log flood report", got)
	}
	m.ReportRefusals(time.Now().Add(time.Hour))
	if got, _ := rep.take(); len(got) != 1 || !strings.Contains(got[0], "lines dropped in the last") {
		t.Fatalf("the summary: %q", got)
	}
}

// The GPIO host functions answer every call they refuse with its errno
// (gpio_read and gpio_wait_edge with -errno), checking in order: the name
// (bounded, in memory, UTF-8), the phase, the manifest's request, the
// grant, the board; then gpio_write's level and gpio_in's pull.
func TestGPIOErrnos(t *testing.T) {
	const (
		gpio17  = "(i32.const 1100) (i32.const 6)"
		gpio22  = "(i32.const 1106) (i32.const 6)" // granted; the board has no such line
		gpio1   = "(i32.const 1100) (i32.const 5)" // a prefix of a granted line
		long    = "(i32.const 1100) (i32.const 257)"
		outside = "(i32.const 131070) (i32.const 6)" // past the end of the 2 pages
		notUTF8 = "(i32.const 3000) (i32.const 1)"   // 0xff, stored there first
	)
	fns := []struct {
		name, call string // call's %s: the name's pointer and length
		sign       int
	}{
		{"gpio_write", "(call $gpio_write %s (i32.const 1))", 1},
		{"gpio_read", "(call $gpio_read %s)", -1},
		{"gpio_in", "(call $gpio_in %s (i32.const 2))", 1},
		{"gpio_wait_edge", "(call $gpio_wait_edge %s (i32.const 0))", -1},
	}
	noGPIO := strings.Replace(wasmtest.Manifest, `"gpio",`, "", 1)
	type setup struct {
		phase    wasmhost.Phase
		manifest string
		board    string // "sim" (GPIO17 only), "none" or "closed"
	}
	run := setup{phase: wasmhost.PhaseRun, board: "sim"}
	with := func(f func(*setup)) setup { s := run; f(&s); return s }
	for _, tc := range []struct {
		why   string
		name  string
		setup setup
		want  abi.Errno
	}{
		{"a granted line", gpio17, run, abi.ErrnoOK},
		{"a name too long", long, run, abi.ErrnoBadArg},
		{"a name outside memory", outside, run, abi.ErrnoBadArg},
		{"a name not UTF-8", notUTF8, run, abi.ErrnoBadArg},
		{"a name too long, while planning", long, with(func(s *setup) { s.phase = wasmhost.PhasePlan }), abi.ErrnoBadArg},
		{"planning", gpio17, with(func(s *setup) { s.phase = wasmhost.PhasePlan }), abi.ErrnoPlanning},
		{"planning, without requesting gpio", gpio17, with(func(s *setup) { s.phase, s.manifest = wasmhost.PhasePlan, noGPIO }), abi.ErrnoPlanning},
		{"without requesting gpio", gpio17, with(func(s *setup) { s.manifest = noGPIO }), abi.ErrnoNotGranted},
		{"a line not granted", gpio1, run, abi.ErrnoNotGranted},
		{"a line not granted, on no board", gpio1, with(func(s *setup) { s.board = "none" }), abi.ErrnoNotGranted},
		{"a granted line the board lacks", gpio22, run, abi.ErrnoNoLine},
		{"no board", gpio17, with(func(s *setup) { s.board = "none" }), abi.ErrnoNoLine},
		{"a closed board", gpio17, with(func(s *setup) { s.board = "closed" }), abi.ErrnoIO},
	} {
		for _, fn := range fns {
			t.Run(fn.name+"/"+tc.why, func(t *testing.T) {
				want := fn.sign * int(tc.want)
				if got := gpioCall(t, fmt.Sprintf(fn.call, tc.name), tc.setup.phase, tc.setup.manifest, tc.setup.board); got != want {
					t.Fatalf("%s of %s: %d, want %d", fn.name, tc.why, got, want)
				}
			})
		}
	}
	for call, want := range map[string]abi.Errno{
		"(call $gpio_write " + gpio17 + " (i32.const 0))": abi.ErrnoOK,
		"(call $gpio_write " + gpio17 + " (i32.const 2))": abi.ErrnoBadArg,
		"(call $gpio_write " + gpio1 + " (i32.const 2))":  abi.ErrnoNotGranted, // the line before the level
		"(call $gpio_in " + gpio17 + " (i32.const 0))":    abi.ErrnoOK,
		"(call $gpio_in " + gpio17 + " (i32.const 3))":    abi.ErrnoBadArg,
		"(call $gpio_in " + gpio1 + " (i32.const 3))":     abi.ErrnoNotGranted,
	} {
		if got := gpioCall(t, call, run.phase, "", run.board); got != int(want) {
			t.Errorf("%s: %d, want %d", call, got, want)
		}
	}
}

// gpioCall loads a module whose sensor makes call (an i32 expression)
// and returns what it gave.
func gpioCall(t *testing.T, call string, phase wasmhost.Phase, manifest, board string) int {
	t.Helper()
	m, lines := gpioModule(t, call, manifest, board)
	if board == "closed" {
		lines.Close()
	}
	return senseInt(t, m, phase)
}

// gpioModule loads a module whose sensor makes call and returns what it
// gave as a number (senseInt reads it). GPIO17 and GPIO22 are granted;
// the board has GPIO17, and the host no board if board is "none".
func gpioModule(t *testing.T, call, manifest, board string) (*wasmhost.Module, *sim.GPIO) {
	t.Helper()
	ctx := context.Background()
	opts := wasmhost.Options{CacheDir: sharedCache}
	lines := sim.NewGPIO("GPIO17")
	if board != "none" {
		opts.GPIO = lines
	}
	h, err := wasmhost.New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(ctx) })
	// The skeleton imports gpio_write only.
	text := strings.Replace(wasmtest.Module{Manifest: manifest, Sense: `(local $n i32)
	(i32.store8 (i32.const 3000) (i32.const 0xff))
	(local.set $n ` + call + `)
	(i64.store (i32.const 2500) (i64.const 0x0400))
	(f64.store (i32.const 2502) (f64.convert_i32_s (local.get $n)))
	(i64.const 0x9c40000000a)`}.Text(), `  (memory`, `  (import "tern" "gpio_read" (func $gpio_read (param i32 i32) (result i32)))
  (import "tern" "gpio_in" (func $gpio_in (param i32 i32 i32) (result i32)))
  (import "tern" "gpio_wait_edge" (func $gpio_wait_edge (param i32 i32 i32) (result i32)))
  (memory`, 1)
	m, err := h.Load(ctx, wasmtest.Assemble(t, text), wasmhost.Grants{GPIO: []string{"GPIO17", "GPIO22"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m, lines
}

func senseInt(t *testing.T, m *wasmhost.Module, phase wasmhost.Phase) int {
	t.Helper()
	v, err := m.Call(context.Background(), phase, "sense", abi.Call{Job: "watch", Path: "/evil_sensor"})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := json.Unmarshal(v, &n); err != nil {
		t.Fatalf("the sensor returned %s: %v", v, err)
	}
	return n
}

// A line the host has used fails as the board does: once the board is
// closed, every GPIO function answers io.
func TestGPIOAfterTheBoardCloses(t *testing.T) {
	for call, sign := range map[string]int{
		"(call $gpio_write (i32.const 1100) (i32.const 6) (i32.const 1))":     1,
		"(call $gpio_read (i32.const 1100) (i32.const 6))":                    -1,
		"(call $gpio_in (i32.const 1100) (i32.const 6) (i32.const 2))":        1,
		"(call $gpio_wait_edge (i32.const 1100) (i32.const 6) (i32.const 0))": -1,
	} {
		m, lines := gpioModule(t, call, "", "sim")
		if got := senseInt(t, m, wasmhost.PhaseRun); got != 0 {
			t.Fatalf("%s: %d, want 0", call, got)
		}
		lines.Close()
		if got, want := senseInt(t, m, wasmhost.PhaseRun), sign*int(abi.ErrnoIO); got != want {
			t.Errorf("%s, the board closed: %d, want %d", call, got, want)
		}
	}
}
