package wasmhost_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/internal/wasmbuild"
	"github.com/tern-iot/tern/runtime/internal/wasmhost"
	"github.com/tern-iot/tern/runtime/internal/wasmtest"
	"github.com/tern-iot/tern/sdk/abi"
)

func relayWasm(t testing.TB) []byte {
	t.Helper()
	b, err := wasmbuild.Cached("github.com/tern-iot/tern/plugins/relay")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const relayConfig = `{"lines":{"heater":"GPIO17","lamp":"GPIO22"}}`

// sharedCache is one compilation cache for the tests that do not measure
// caching: compiling under the race detector takes seconds.
var sharedCache string

func TestMain(m *testing.M) {
	if loop := os.Getenv(deadlineChildEnv); loop != "" {
		os.Exit(deadlineChild(loop)) // deadline_test.go
	}
	dir, err := os.MkdirTemp("", "wasmhost-cache-")
	if err != nil {
		panic(err)
	}
	sharedCache = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func loadRelay(t *testing.T, opts wasmhost.Options) (*wasmhost.Module, *sim.GPIO) {
	t.Helper()
	ctx := context.Background()
	if opts.CacheDir == "" {
		opts.CacheDir = sharedCache
	}
	g := sim.NewGPIO("GPIO17", "GPIO22", "GPIO27")
	opts.GPIO = g
	h, err := wasmhost.New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(ctx) })
	m, err := h.Load(ctx, relayWasm(t), wasmhost.Grants{GPIO: []string{"GPIO17"}}, json.RawMessage(relayConfig))
	if err != nil {
		t.Fatal(err)
	}
	return m, g
}

func call(name, target string) abi.Call {
	return abi.Call{Job: "set", Path: "/relays/" + name, Params: map[string]string{"name": name}, Target: json.RawMessage(target)}
}

func TestManifest(t *testing.T) {
	m, _ := loadRelay(t, wasmhost.Options{})
	man := m.Manifest()
	if man.Name != "relay" || man.ABI != abi.ABIVersion || len(man.Jobs) != 3 || !man.Jobs[2].IsCommand() || len(man.Sensors) != 1 {
		t.Fatalf("manifest = %+v", man)
	}
	if man.Jobs[0].Path != "/relays/:name" || man.Sensors[0].Path != "/relays" {
		t.Fatalf("manifest paths = %+v", man)
	}
}

func TestRunDrivesGrantedLine(t *testing.T) {
	ctx := context.Background()
	m, g := loadRelay(t, wasmhost.Options{})
	if _, err := m.Call(ctx, wasmhost.PhaseRun, "run", call("heater", "true")); err != nil {
		t.Fatal(err)
	}
	if l, _ := g.Level("GPIO17"); l != gpio.High {
		t.Fatalf("GPIO17 = %v after run, want High", l)
	}
	v, err := m.Call(ctx, wasmhost.PhaseSense, "sense", abi.Call{Job: "relays", Path: "/relays"})
	if err != nil {
		t.Fatal(err)
	}
	// lamp's line is not granted, so the sensor leaves it out.
	if string(v) != `{"heater":true}` {
		t.Fatalf("sense = %s", v)
	}
}

func TestUngrantedLineIsRefusedInsideTheModule(t *testing.T) {
	ctx := context.Background()
	m, g := loadRelay(t, wasmhost.Options{})
	_, err := m.Call(ctx, wasmhost.PhaseRun, "run", call("lamp", "true"))
	if err == nil || !strings.Contains(err.Error(), "not granted") {
		t.Fatalf("run lamp: err = %v, want a not-granted error from the module", err)
	}
	if errors.Is(err, wasmhost.ErrCall) {
		t.Fatalf("the module handled the refusal itself; got a host failure: %v", err)
	}
	if n := g.Writes("GPIO22"); n != 0 {
		t.Fatalf("GPIO22 written %d times", n)
	}
	// The module is still usable.
	if _, err := m.Call(ctx, wasmhost.PhaseRun, "run", call("heater", "true")); err != nil {
		t.Fatal(err)
	}
}

func TestNoHardwareWhilePlanning(t *testing.T) {
	ctx := context.Background()
	m, g := loadRelay(t, wasmhost.Options{})
	_, err := m.Call(ctx, wasmhost.PhasePlan, "run", call("heater", "true"))
	if err == nil || !strings.Contains(err.Error(), "planning") {
		t.Fatalf("run while planning: err = %v", err)
	}
	if n := g.Writes("GPIO17"); n != 0 {
		t.Fatalf("GPIO17 written %d times while planning", n)
	}
	try, err := m.Try(ctx, call("heater", "true"))
	if err != nil || !try.OK || string(try.Effect) != "true" {
		t.Fatalf("try = %+v, %v", try, err)
	}
	try, err = m.Try(ctx, call("pump", "true"))
	if err != nil || try.OK {
		t.Fatalf("try on an unconfigured relay = %+v, %v", try, err)
	}
}

func TestParallelCalls(t *testing.T) {
	ctx := context.Background()
	m, _ := loadRelay(t, wasmhost.Options{Instances: 3})
	errs := make(chan error, 20)
	for i := range 20 {
		go func() {
			_, err := m.Call(ctx, wasmhost.PhaseRun, "run", call("heater", []string{"true", "false"}[i%2]))
			errs <- err
		}()
	}
	for range 20 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// Code loaded from the compilation cache is mapped from its file, not
// copied (third_party/README.md, patch 5); an entry that does not check is
// compiled again and replaced, not a reason to refuse the module.
func TestCompilationCache(t *testing.T) {
	dir := t.TempDir()
	first, _ := loadRelay(t, wasmhost.Options{CacheDir: dir})
	entries, _ := filepath.Glob(filepath.Join(dir, "wazero-*", "*"))
	if len(entries) != 1 {
		t.Fatalf("cache entries %v, want one", entries)
	}
	entry := entries[0]
	if mapped(t, entry) {
		t.Fatal("code compiled in this process is mapped from the cache file")
	}
	second, _ := loadRelay(t, wasmhost.Options{CacheDir: dir})
	t.Logf("compile: first %v, from cache %v", first.CompileTime, second.CompileTime)
	if !mapped(t, entry) {
		t.Fatal("code loaded from the cache is not mapped from its file")
	}
	good, err := os.ReadFile(entry)
	if err != nil {
		t.Fatal(err)
	}
	flipped := slices.Clone(good)
	flipped[len(flipped)/2] ^= 0xff // in the code: the checksum does not match
	for name, bad := range map[string][]byte{
		"a byte flipped": flipped,
		"cut in half":    good[:len(good)/2], // shorter than its header says: mapped, it would fault
	} {
		if err := os.WriteFile(entry+".bad", bad, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(entry+".bad", entry); err != nil { // as the cache writes: mappings keep the old file
			t.Fatal(err)
		}
		m, g := loadRelay(t, wasmhost.Options{CacheDir: dir})
		if _, err := m.Call(context.Background(), wasmhost.PhaseRun, "run", call("heater", "true")); err != nil {
			t.Fatalf("%s: the module compiled again does not run: %v", name, err)
		}
		if l, _ := g.Level("GPIO17"); l != gpio.High {
			t.Fatalf("%s: the module compiled again did not switch the relay", name)
		}
		if again, err := os.ReadFile(entry); err != nil || !bytes.Equal(again, good) {
			t.Fatalf("%s: the damaged entry was not replaced by the code compiled again (%v)", name, err)
		}
	}
}

// mapped reports whether the process maps the file at path.
func mapped(t *testing.T, path string) bool {
	t.Helper()
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatalf("reading the process's mappings (Linux's /proc): %v", err)
	}
	for _, l := range strings.Split(string(maps), "\n") {
		if strings.HasSuffix(l, " "+path) {
			return true
		}
	}
	return false
}

func TestNotAModule(t *testing.T) {
	ctx := context.Background()
	h, err := wasmhost.New(ctx, wasmhost.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	if _, err := h.Load(ctx, []byte("not wasm"), wasmhost.Grants{}, nil); err == nil {
		t.Fatal("loaded garbage")
	}
}

// While planning, a module's clock reads the time the search started: it
// does not move between conditions, and differs from the real time only
// then.
func TestClockFrozenWhilePlanning(t *testing.T) {
	ctx := context.Background()
	// tern_try reads the realtime clock (WASI clock 0) into 2400 and
	// returns it as the effect: status ok, condition holds, no flags, an
	// action's effect, a number (float64).
	try := `(drop (call $clock_time_get (i32.const 0) (i64.const 1) (i32.const 2400)))
	(i64.store (i32.const 2500) (i64.const 0x0400000100))
	(f64.store (i32.const 2505) (f64.convert_i64_u (i64.load (i32.const 2400))))
	` + wasmtest.Packed(2500, 13)
	h, err := wasmhost.New(ctx, wasmhost.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	m, err := h.Load(ctx, wasmtest.Assemble(t, wasmtest.Module{Try: try}.Text()), wasmhost.Grants{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	read := func(ctx context.Context) float64 {
		r, err := m.Try(ctx, abi.Call{Job: "poke", Path: "/evil/x"})
		if err != nil || !r.OK {
			t.Fatalf("try: %+v %v", r, err)
		}
		var f float64
		json.Unmarshal(r.Effect, &f)
		return f
	}
	planning := wasmhost.WithPlanTime(ctx, at)
	first := read(planning)
	time.Sleep(5 * time.Millisecond)
	if second := read(planning); first != second || math.Abs(first-float64(at.UnixNano())) > 1e3 {
		t.Fatalf("planning clock read %v then %v, want %v both times", first, second, float64(at.UnixNano()))
	}
	if now := read(ctx); math.Abs(now-float64(time.Now().UnixNano())) > float64(time.Second) {
		t.Fatalf("a call outside a search read %v, not about now", now)
	}
}
