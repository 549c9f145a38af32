package runtime_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	runtimepkg "runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/internal/testbound"
	"github.com/tern-iot/tern/internal/wasmbuild"
	"github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/runtime/internal/wasmtest"
	"github.com/tern-iot/tern/runtime/store/backend"
)

// storeBytes is WebAssembly that writes b at addr, then returns it as a
// call's output.
func storeBytes(addr int, b []byte) string {
	var s strings.Builder
	for i, c := range b {
		fmt.Fprintf(&s, "(i32.store8 (i32.const %d) (i32.const %d))\n", addr+i, c)
	}
	return s.String() + wasmtest.Packed(addr, len(b))
}

// expansion is a tern_try result: a method whose one step is job on path
// with target true.
func expansion(job, path string) []byte {
	b := []byte{0, 1, 0, 1} // ok, holds, flags, a method's steps
	b = binary.LittleEndian.AppendUint32(b, 1)
	for _, s := range []string{job, path} {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return append(b, 3) // true
}

// A module with no grant on the relay's line cannot switch it by
// expanding into the relay module's job.
func TestHostileExpandIntoForeignJob(t *testing.T) {
	man := `{"name":"evil","version":"1.0.0","abi":1,"jobs":[{"name":"take","path":"/evil/:name","op":"any","kind":"method"}],"resources":["gpio"]}`
	try := storeBytes(2500, expansion("relay.switch", "/relays/heater"))
	r := startHostile(t, wasmtest.Assemble(t, wasmtest.Module{Manifest: man, Try: try}.Text()))
	if err := r.a.SetTarget(1, json.RawMessage(`{"relays":{"heater":false},"evil":{"x":true}}`)); err != nil {
		t.Fatal(err)
	}
	r.expect(t, runtime.EventPlanFailed, "evil.take may not expand into relay.switch: module relay is granted gpio GPIO17, which evil is not")
	if n := r.lines.Writes("GPIO17"); n != 0 {
		t.Fatalf("GPIO17 written %d times by the evil module's doing", n)
	}
	r.othersWork(t, 2)
}

// The configuration may allow it.
func TestExpandAllowedByConfiguration(t *testing.T) {
	// take (job 0) expands into the relay's switch and then poke (job 1),
	// an action that sets /evil/:name.
	man := `{"name":"evil","version":"1.0.0","abi":1,"jobs":[` +
		`{"name":"take","path":"/evil/:name","op":"any","kind":"method"},` +
		`{"name":"poke","path":"/evil/:name","op":"any"}],"resources":["gpio"]}`
	steps := expansion("relay.switch", "/relays/heater")
	steps[4] = 2 // two steps
	steps = append(steps, expansion("evil.poke", "/evil/x")[8:]...)
	try := `(if (result i64) (i32.eqz (i32.load (local.get 0)))
	  (then ` + storeBytes(2500, steps) + `)
	  (else ` + wasmtest.Packed(wasmtest.OutTry, 5) + `))`
	r := startHostile(t, wasmtest.Assemble(t, wasmtest.Module{Manifest: man, Try: try}.Text()), func(o *runtime.Options) {
		o.Modules[1].Expand = []string{"relay"}
	})
	if err := r.a.SetTarget(1, json.RawMessage(`{"evil":{"x":true}}`)); err != nil {
		t.Fatal(err)
	}
	testbound.WaitFor(t, "the relay switched through the evil module's method", func() bool { return level(r.lines, "GPIO17") == gpio.High })
}

// A sensor may not write where another module's jobs work: the two would
// fight over the place.
func TestHostileSensorOnForeignPath(t *testing.T) {
	man := strings.Replace(wasmtest.Manifest, `"path":"/evil_sensor"`, `"path":"/relays"`, 1)
	r := startHostile(t, wasmtest.Assemble(t, wasmtest.Module{Manifest: man}.Text()))
	r.expect(t, runtime.EventModuleError, "sensor watch writes /relays, where module relay's job")
	r.othersWork(t, 1)
	if _, ok := r.a.Status().Modules["evil"]; ok {
		t.Fatal("the module whose sensor writes the relays' place runs")
	}
}

func TestSharedGrants(t *testing.T) {
	relay, err := wasmbuild.Cached("github.com/tern-iot/tern/plugins/relay")
	if err != nil {
		t.Fatal(err)
	}
	evil := wasmtest.Assemble(t, wasmtest.Module{}.Text())
	opts := func(shared ...string) runtime.Options {
		st, err := backend.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return runtime.Options{Store: st, GPIO: sim.NewGPIO("GPIO17"), CacheDir: sharedCache, SharedGrants: shared,
			Modules: []runtime.ModuleSpec{
				{Name: "relay", Wasm: relay, Grants: runtime.Grants{GPIO: []string{"GPIO17"}}},
				{Name: "evil", Wasm: evil, Grants: runtime.Grants{GPIO: []string{"GPIO17"}}},
			}}
	}
	_, err = runtime.New(context.Background(), opts())
	if err == nil || !strings.Contains(err.Error(), "gpio GPIO17 is granted to modules relay and evil") {
		t.Fatalf("two modules granted GPIO17: got %v, want a refusal naming both", err)
	}
	a, err := runtime.New(context.Background(), opts("GPIO17"))
	if err != nil {
		t.Fatalf("GPIO17 listed as shared: %v", err)
	}
	a.Close(context.Background())
}

// A sensor that takes as long as it is allowed does not hold up the other
// modules: they sense, plan and run meanwhile.
func TestSlowSensorDoesNotStallOthers(t *testing.T) {
	r := startHostile(t, wasmtest.Assemble(t, wasmtest.Module{Sense: spin}.Text()), func(o *runtime.Options) {
		o.SensorTimeout = time.Hour // the test ends it
	})
	r.othersWork(t, 1)
	p, err := r.lines.Pin("GPIO17")
	if err != nil {
		t.Fatal(err)
	}
	p.Out(gpio.Low) // drift, sensed by the relay module alone
	r.expect(t, runtime.EventDrift, "/relays/heater")
	testbound.WaitFor(t, "the relay module sensing the drift and correcting it", func() bool { return level(r.lines, "GPIO17") == gpio.High })
}

// WASI randomness comes from the OS: two instances see different bytes
// (wazero's default source is seeded the same everywhere).
func TestRandomDiffersPerInstance(t *testing.T) {
	// The sensor reports a random u32 as a number.
	sense := `(drop (call $random_get (i32.const 2600) (i32.const 4)))
	(i32.store8 (i32.const 2700) (i32.const 0)) (i32.store8 (i32.const 2701) (i32.const 4))
	(f64.store (i32.const 2702) (f64.convert_i32_u (i32.load (i32.const 2600))))
	` + wasmtest.Packed(2700, 10)
	text := strings.Replace(wasmtest.Module{Sense: sense}.Text(), "(import \"tern\"",
		"(import \"wasi_snapshot_preview1\" \"random_get\" (func $random_get (param i32 i32) (result i32)))\n  (import \"tern\"", 1)
	wasm := wasmtest.Assemble(t, text)
	var seen []any
	for range 2 {
		r := startHostile(t, wasm)
		testbound.WaitFor(t, "a sensed random number", func() bool {
			var m map[string]any
			json.Unmarshal(r.a.Status().State, &m)
			if v, ok := m["evil_sensor"]; ok {
				seen = append(seen, v)
				return true
			}
			return false
		})
	}
	if seen[0] == seen[1] {
		t.Fatalf("two instances read the same random number %v", seen[0])
	}
}

func TestHostileUnknownImport(t *testing.T) {
	text := strings.Replace(wasmtest.Module{}.Text(), "(import \"tern\"", "(import \"env\" \"foo\" (func))\n  (import \"tern\"", 1)
	r := startHostile(t, wasmtest.Assemble(t, text))
	r.expect(t, runtime.EventModuleError, `imports function "env"."foo", which tern does not provide`)
	r.othersWork(t, 1)
}

func TestHostileInitializeHangs(t *testing.T) {
	text := strings.Replace(wasmtest.Module{}.Text(), `(func (export "_initialize"))`, `(func (export "_initialize") `+spin+`)`, 1)
	r := startHostile(t, wasmtest.Assemble(t, text))
	r.expect(t, runtime.EventModuleError, "its start function (_initialize, or a start section) did not return before the call's deadline")
	r.othersWork(t, 1)
}

// Compiling in a child process: a module within the bounds loads; one over
// them is refused with a reason, and the agent goes on.
func TestCompileIsolated(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// One cache for the cases, in this order: the first compiles the
	// relay module under the bounds, which marks it checked, so that the
	// tight bounds of the others refuse only the new module.
	cache := t.TempDir()
	relay, err := wasmbuild.Cached("github.com/tern-iot/tern/plugins/relay")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		adjust func(*runtime.Options)
		want   string // "" loads
		big    bool   // the relay module's code, not a small WAT module
	}{
		{"within bounds", func(*runtime.Options) {}, "", false},
		{"over time", func(o *runtime.Options) { o.CompileTimeout = time.Nanosecond }, "compiling took longer than 1ns (module_limits.compile_timeout in ternd.yaml)", false},
		// Compiling a Go module takes tens of MiB.
		{"over memory", func(o *runtime.Options) { o.CompileMemoryMiB = 1 }, "compiling needed more than 1 MiB (module_limits.compile_memory_mib in ternd.yaml)", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Code of its own, compiled nowhere before: a unique export,
			// or a unique custom section after the relay's code.
			unique := fmt.Sprint(time.Now().UnixNano())
			wasm := wasmtest.Assemble(t, strings.Replace(wasmtest.Module{}.Text(), "(func (export \"_initialize\"))", "(func (export \"_initialize\")) (func (export \"unique_"+unique+"\"))", 1))
			if tc.big {
				wasm = append(append(slices.Clip(relay), 0, byte(2+len(unique)), 1, 'u'), unique...)
			}
			r := startHostile(t, wasm, func(o *runtime.Options) {
				o.CacheDir = cache
				o.CompileCommand = []string{self, "compile-module"}
				tc.adjust(o)
			})
			if tc.want == "" {
				testbound.WaitFor(t, "the module compiled in a child process", func() bool { return r.a.Status().Modules["evil"] == "1.0.0" })
				return
			}
			r.expect(t, runtime.EventModuleError, tc.want)
			r.othersWork(t, 1)
		})
	}
}

// Code whose install was under way when the agent stopped (it may be what
// stopped it) is refused at the next start, and not tried again.
func TestInterruptedInstallRefused(t *testing.T) {
	dir := t.TempDir()
	st, err := backend.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	evil := wasmtest.Assemble(t, wasmtest.Module{}.Text())
	// What InstallModule records before it compiles; a SIGKILL then leaves it.
	if err := st.Put([]byte("module/evil/attempt"), []byte(hash(evil))); err != nil {
		t.Fatal(err)
	}
	st.Close()
	r := startHostile(t, wasmtest.Assemble(t, wasmtest.Module{Run: `(unreachable)`}.Text()), func(o *runtime.Options) {
		o.Store.Close()
		o.Store, err = backend.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
	})
	r.expect(t, runtime.EventModuleRefused, "its install was under way when ternd stopped")
	err = r.a.InstallModule(context.Background(), "evil", evil)
	if err == nil || !strings.Contains(err.Error(), "was refused before") {
		t.Fatalf("installing the interrupted code again: %v, want a refusal", err)
	}
}

func hash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Deep recursion overflows the call's stack, bounded well below the module's
// memory cap (third_party/README.md), and fails only that call.
func TestHostileStackOverflow(t *testing.T) {
	text := strings.Replace(wasmtest.Module{Run: `(drop (call $rec (i64.const 0))) ` + wasmtest.Packed(wasmtest.OutNull, 2)}.Text(),
		`(func (export "_initialize"))`,
		`(func (export "_initialize")) (func $rec (param i64) (result i64) (local i64 i64 i64 i64) (call $rec (i64.add (local.get 0) (i64.const 1))))`, 1)
	// Recursing 8 MiB deep takes longer than the rig's deadline under the race detector.
	r := startHostile(t, wasmtest.Assemble(t, text), func(o *runtime.Options) { o.CallTimeout = 10 * time.Second })
	var before runtimepkg.MemStats
	runtimepkg.ReadMemStats(&before)
	if err := r.a.SetTarget(1, json.RawMessage(`{"evil":{"x":true,"y":true}}`)); err != nil {
		t.Fatal(err)
	}
	r.expect(t, runtime.EventModuleError, "stack overflow")
	r.othersWork(t, 2)
	var after runtimepkg.MemStats
	runtimepkg.ReadMemStats(&after)
	t.Logf("heap allocated while overflowing: %d MiB in total", (after.TotalAlloc-before.TotalAlloc)>>20)
}

// A module that fails every call (its sensor, every 50 ms) gets a bounded
// number of events: it must not fill the outbox, nor hold up the reports
// of the others.
func TestHostileFailingSensorEventsBounded(t *testing.T) {
	// Each call writes GPIO27 (granted; it counts the calls), then traps.
	sense := `(drop (call $gpio_write (i32.const 1100) (i32.const 6) (i32.const 1))) (unreachable)`
	text := strings.Replace(wasmtest.Module{Sense: sense}.Text(), `"GPIO17GPIO22`, `"GPIO27GPIO22`, 1)
	r := startHostile(t, wasmtest.Assemble(t, text))
	start := time.Now()
	testbound.WaitFor(t, "100 failed sensor calls", func() bool { return r.lines.Writes("GPIO27") >= 100 })
	elapsed := time.Since(start)
	n := 0
	r.rep.mu.Lock()
	for _, e := range r.rep.events {
		if e.Kind == runtime.EventModuleError && e.Module == "evil" {
			n++
		}
	}
	r.rep.mu.Unlock()
	if limit := 20 + int(elapsed/(6*time.Second)) + 1; n > limit {
		t.Fatalf("%d module.error events for 100 failed calls in %v; want at most %d", n, elapsed.Round(time.Millisecond), limit)
	}
	r.othersWork(t, 1)
}

// An event's text is cut, with a marker, to fit a report: a 2 MB
// explanation once held up every report behind it.
func TestHugeEventTextCut(t *testing.T) {
	r := startHostile(t, wasmtest.Assemble(t, wasmtest.Module{}.Text()))
	key := strings.Repeat("k", 100<<10) // a key nothing binds: the plan fails naming it
	if err := r.a.SetTarget(1, json.RawMessage(`{"`+key+`":true}`)); err != nil {
		t.Fatal(err)
	}
	r.expect(t, runtime.EventPlanFailed, "bytes cut)")
	r.rep.mu.Lock()
	defer r.rep.mu.Unlock()
	for _, e := range r.rep.events {
		if len(e.Message) > 8<<10 || len(e.Path) > 1<<10 {
			t.Errorf("%s event of %d + %d bytes reached the reporter", e.Kind, len(e.Message), len(e.Path))
		}
	}
}
