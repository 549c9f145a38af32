package runtime_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/internal/modfile"
	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/internal/testbound"
	"github.com/tern-iot/tern/internal/wasmbuild"
	"github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/runtime/internal/wasmtest"
	"github.com/tern-iot/tern/runtime/store/backend"
)

// Loops that never end, in WebAssembly.
const spin = `(loop $forever (br $forever)) (unreachable)`

// hostileRig runs an agent with the relay module and one hostile module.
type hostileRig struct {
	a      *runtime.Agent
	rep    *recorder
	lines  *sim.GPIO
	i2c    *sim.I2C
	serial *sim.Serial
}

// callDeadline is the rig's call deadline, for both modules. The hostile
// module's loops and sleeps never end, so any deadline shows it is cut;
// the relay module's calls must fit in it, and its first one instantiates
// it: Go's runtime init, which took over 300 ms under the race detector on
// a busy machine and left the relay module unloaded. A deadline only the
// hostile module should meet is a speed claim about the other.
var callDeadline = testbound.Scale(5 * time.Second)

func startHostile(t *testing.T, evil []byte, adjust ...func(*runtime.Options)) *hostileRig {
	t.Helper()
	relay, err := wasmbuild.Cached("github.com/tern-iot/tern/plugins/relay")
	if err != nil {
		t.Fatal(err)
	}
	st, err := backend.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := &hostileRig{rep: &recorder{}, lines: sim.NewGPIO("GPIO17", "GPIO22", "GPIO27"), i2c: sim.NewI2C("i2c1"), serial: sim.NewSerial()}
	echo := func(b []byte) []byte { return b }
	r.serial.Connect("ttyS0", echo)
	r.serial.Connect("ttyS1", echo)
	opts := runtime.Options{
		Store: st, GPIO: r.lines, I2C: r.i2c, Serial: r.serial, CacheDir: sharedCache, Reporter: r.rep, Logger: testLogger(t),
		RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond,
		CallTimeout: callDeadline, ModuleMemoryMiB: 64,
		Modules: []runtime.ModuleSpec{
			{Name: "relay", Wasm: relay, Grants: runtime.Grants{GPIO: []string{"GPIO17"}},
				Config: json.RawMessage(`{"lines":{"heater":"GPIO17"}}`)},
			{Name: "evil", Wasm: evil, Grants: runtime.Grants{GPIO: []string{"GPIO27"}, I2C: []string{"i2c1:0x48"}, Serial: []string{"ttyS0@9600"}}},
		},
	}
	for _, f := range adjust {
		f(&opts)
	}
	r.a, _ = runAgent(t, opts) // the agent must start even with a hostile module
	return r
}

// expect waits for an event of kind whose message names the problem.
func (r *hostileRig) expect(t *testing.T, kind runtime.EventKind, problem string) {
	t.Helper()
	testbound.WaitFor(t, fmt.Sprintf("a %s event saying %q", kind, problem), func() bool {
		_, ok := r.rep.find(kind, problem)
		return ok
	})
}

// othersWork checks the agent is up and the relay module still converges.
func (r *hostileRig) othersWork(t *testing.T, version uint64) {
	t.Helper()
	if err := r.a.SetTarget(version, json.RawMessage(`{"relays":{"heater":true}}`)); err != nil {
		t.Fatal(err)
	}
	testbound.WaitFor(t, "the relay module converging beside the hostile one", func() bool {
		s := r.a.Status()
		return s.Converged && s.TargetVersion == version && level(r.lines, "GPIO17") == gpio.High
	})
}

func TestHostileLoopInJob(t *testing.T) {
	r := startHostile(t, wasmtest.Assemble(t, wasmtest.Module{Run: spin}.Text()))
	if err := r.a.SetTarget(1, json.RawMessage(`{"relays":{"heater":true},"evil":{"x":true}}`)); err != nil {
		t.Fatal(err)
	}
	r.expect(t, runtime.EventModuleError, "tern_run: exceeded its "+callDeadline.String()+" deadline")
	testbound.WaitFor(t, "the independent relay branch", func() bool { return level(r.lines, "GPIO17") == gpio.High })
	r.othersWork(t, 2)
}

func TestHostileLoopInCondition(t *testing.T) {
	r := startHostile(t, wasmtest.Assemble(t, wasmtest.Module{Try: spin}.Text()))
	if err := r.a.SetTarget(1, json.RawMessage(`{"evil":{"x":true}}`)); err != nil {
		t.Fatal(err)
	}
	r.expect(t, runtime.EventModuleError, "tern_try: exceeded its "+callDeadline.String()+" deadline")
	r.expect(t, runtime.EventPlanFailed, "evil.poke: failed")
	r.othersWork(t, 2)
}

func TestHostileLoopInSensor(t *testing.T) {
	r := startHostile(t, wasmtest.Assemble(t, wasmtest.Module{Sense: spin}.Text()))
	r.expect(t, runtime.EventModuleError, "tern_sense: exceeded its "+callDeadline.String()+" deadline")
	r.othersWork(t, 1)
}

// A WASI sleep of an hour is cut at the call's deadline.
func TestHostileSleepPastDeadline(t *testing.T) {
	// One clock subscription at 3000: monotonic clock, relative timeout 1 h.
	sleep := `(i32.store (i32.const 3016) (i32.const 1))
	(i64.store (i32.const 3024) (i64.const 3600000000000))
	(drop (call $poll_oneoff (i32.const 3000) (i32.const 3100) (i32.const 1) (i32.const 3200)))
	` + wasmtest.Packed(wasmtest.OutNull, 2)
	r := startHostile(t, wasmtest.Assemble(t, wasmtest.Module{Run: sleep}.Text()))
	if err := r.a.SetTarget(1, json.RawMessage(`{"evil":{"x":true}}`)); err != nil {
		t.Fatal(err)
	}
	r.expect(t, runtime.EventModuleError, "tern_run: exceeded its "+callDeadline.String()+" deadline")
	r.othersWork(t, 2)
}

func TestHostileMemoryGrowth(t *testing.T) {
	grow := `(block $full (loop $more
	  (br_if $full (i32.eq (memory.grow (i32.const 64)) (i32.const -1)))
	  (br $more)))
	(unreachable)`
	// Growing 64 MiB takes longer than the rig's deadline under the race detector.
	r := startHostile(t, wasmtest.Assemble(t, wasmtest.Module{Run: grow}.Text()), func(o *runtime.Options) { o.CallTimeout = 10 * time.Second })
	if err := r.a.SetTarget(1, json.RawMessage(`{"evil":{"x":true}}`)); err != nil {
		t.Fatal(err)
	}
	r.expect(t, runtime.EventModuleError, "MiB of the 64 MiB cap")
	r.othersWork(t, 2)
}

func TestHostileTrap(t *testing.T) {
	r := startHostile(t, wasmtest.Assemble(t, wasmtest.Module{Run: `(unreachable)`}.Text()))
	if err := r.a.SetTarget(1, json.RawMessage(`{"evil":{"x":true}}`)); err != nil {
		t.Fatal(err)
	}
	r.expect(t, runtime.EventModuleError, "unreachable")
	r.othersWork(t, 2)
}

func TestHostileGPIONotGranted(t *testing.T) {
	// GPIO22 (at 1106 in the module's data) is granted to no one.
	poke := `(drop (call $gpio_write (i32.const 1106) (i32.const 6) (i32.const 1))) ` + wasmtest.Packed(wasmtest.OutNull, 2)
	r := startHostile(t, wasmtest.Assemble(t, wasmtest.Module{Run: poke}.Text()))
	if err := r.a.SetTarget(1, json.RawMessage(`{"evil":{"x":true}}`)); err != nil {
		t.Fatal(err)
	}
	r.expect(t, runtime.EventModuleError, `asked for GPIO line "GPIO22", which this device does not grant it`)
	if n := r.lines.Writes("GPIO22"); n != 0 {
		t.Fatalf("GPIO22 written %d times", n)
	}
	r.othersWork(t, 2)
}

// A device grant is not enough: the module must ask for the kind of
// hardware in its manifest.
func TestHostileHardwareNotRequested(t *testing.T) {
	// GPIO27 is granted to the module, but its manifest asks for nothing.
	man := strings.Replace(wasmtest.Manifest, `,"resources":["gpio","i2c","serial"]`, ``, 1)
	poke := `(drop (call $gpio_write (i32.const 1106) (i32.const 6) (i32.const 1))) ` + wasmtest.Packed(wasmtest.OutNull, 2)
	r := startHostile(t, wasmtest.Assemble(t, wasmtest.Module{Manifest: man, Run: poke}.Text()), func(o *runtime.Options) {
		o.Modules[1].Grants.GPIO = []string{"GPIO22"}
	})
	if err := r.a.SetTarget(1, json.RawMessage(`{"evil":{"x":true}}`)); err != nil {
		t.Fatal(err)
	}
	r.expect(t, runtime.EventModuleError, "its manifest does not request gpio")
	if n := r.lines.Writes("GPIO22"); n != 0 {
		t.Fatalf("GPIO22 written %d times", n)
	}
	r.othersWork(t, 2)
}

func TestHostileI2CNotGranted(t *testing.T) {
	// A transaction to 0x50 (granted: 0x48 only), writing one byte.
	poke := `(drop (call $i2c_tx (i32.const 1118) (i32.const 4) (i32.const 0x50) (i32.const 1100) (i32.const 1) (i32.const 2000) (i32.const 0))) ` + wasmtest.Packed(wasmtest.OutNull, 2)
	r := startHostile(t, wasmtest.Assemble(t, wasmtest.Module{Run: poke}.Text()))
	eeprom := &sim.Registers{}
	r.i2c.Attach("i2c1", 0x50, eeprom)
	if err := r.a.SetTarget(1, json.RawMessage(`{"evil":{"x":true}}`)); err != nil {
		t.Fatal(err)
	}
	r.expect(t, runtime.EventModuleError, "asked for I2C device i2c1:0x50, which this device does not grant it")
	if n := r.i2c.Transactions("i2c1", 0x50); n != 0 {
		t.Fatalf("%d transactions reached the ungranted device", n)
	}
	r.othersWork(t, 2)
}

// A granted I2C device is reached, from a module in WebAssembly text.
func TestI2CGranted(t *testing.T) {
	// Write register 5 = 'G' ("GPIO17"[0]), as [reg, value] = bytes at 2100.
	poke := `(i32.store8 (i32.const 2100) (i32.const 5)) (i32.store8 (i32.const 2101) (i32.const 71))
	(if (i32.ne (call $i2c_tx (i32.const 1118) (i32.const 4) (i32.const 0x48) (i32.const 2100) (i32.const 2) (i32.const 2200) (i32.const 0)) (i32.const 0)) (then (unreachable)))
	` + wasmtest.Packed(wasmtest.OutNull, 2)
	r := startHostile(t, wasmtest.Assemble(t, wasmtest.Module{Run: poke}.Text()))
	chip := &sim.Registers{}
	r.i2c.Attach("i2c1", 0x48, chip)
	if err := r.a.SetTarget(1, json.RawMessage(`{"evil":{"x":true}}`)); err != nil {
		t.Fatal(err)
	}
	testbound.WaitFor(t, "convergence through I2C", func() bool { return r.a.Status().Converged })
	if chip.Mem[5] != 'G' {
		t.Fatalf("register 5 = %d, want 'G'", chip.Mem[5])
	}
}

func TestHostileSerialNotGranted(t *testing.T) {
	for name, tc := range map[string]struct{ port, baud, want string }{
		"other port":  {"1127", "9600", "asked for serial port ttyS1 at 9600 baud"},
		"other speed": {"1122", "115200", "asked for serial port ttyS0 at 115200 baud"},
	} {
		t.Run(name, func(t *testing.T) {
			poke := fmt.Sprintf(`(drop (call $serial_open (i32.const %s) (i32.const 5) (i32.const %s))) `, tc.port, tc.baud) + wasmtest.Packed(wasmtest.OutNull, 2)
			r := startHostile(t, wasmtest.Assemble(t, wasmtest.Module{Run: poke}.Text()))
			if err := r.a.SetTarget(1, json.RawMessage(`{"evil":{"x":true}}`)); err != nil {
				t.Fatal(err)
			}
			r.expect(t, runtime.EventModuleError, tc.want)
			if n := r.serial.Opens("ttyS0") + r.serial.Opens("ttyS1"); n != 0 {
				t.Fatalf("a refused port was opened %d times", n)
			}
			r.othersWork(t, 2)
		})
	}
}

// A granted port carries bytes both ways, and the host closes what the
// module left open.
func TestSerialGranted(t *testing.T) {
	run := `(local $h i32)
	(local.set $h (call $serial_open (i32.const 1122) (i32.const 5) (i32.const 9600)))
	(if (i32.le_s (local.get $h) (i32.const 0)) (then (unreachable)))
	(drop (call $serial_write (local.get $h) (i32.const 1100) (i32.const 6)))
	(if (i32.ne (call $serial_read (local.get $h) (i32.const 2300) (i32.const 6) (i32.const 100)) (i32.const 6)) (then (unreachable)))
	(if (i32.ne (i32.load8_u (i32.const 2300)) (i32.const 71)) (then (unreachable)))
	` + wasmtest.Packed(wasmtest.OutNull, 2)
	r := startHostile(t, wasmtest.Assemble(t, wasmtest.Module{Run: run}.Text()))
	if err := r.a.SetTarget(1, json.RawMessage(`{"evil":{"x":true,"y":true}}`)); err != nil {
		t.Fatal(err)
	}
	testbound.WaitFor(t, "convergence through the serial port", func() bool { return r.a.Status().Converged })
	// Two tasks each opened the port without closing it: the second open
	// succeeded because the host closed the first when its call ended.
	if n := r.serial.Opens("ttyS0"); n != 2 {
		t.Fatalf("ttyS0 opened %d times, want 2", n)
	}
}

func TestHostileHardwareWhilePlanning(t *testing.T) {
	// The condition drives GPIO27, which is granted, but only for running.
	poke := `(drop (call $gpio_write (i32.const 1100) (i32.const 6) (i32.const 1))) ` + wasmtest.Packed(wasmtest.OutTry, 5)
	r := startHostile(t, wasmtest.Assemble(t, wasmtest.Module{Try: poke}.Text()))
	if err := r.a.SetTarget(1, json.RawMessage(`{"evil":{"x":true}}`)); err != nil {
		t.Fatal(err)
	}
	r.expect(t, runtime.EventModuleError, "while planning")
	if n := r.lines.Writes("GPIO17"); n != 0 {
		t.Fatalf("GPIO17 written %d times while planning", n)
	}
	r.othersWork(t, 2)
}

func TestHostileOversizedOutput(t *testing.T) {
	huge := wasmtest.Packed(0, 2<<20) // claims 2 MiB of output
	r := startHostile(t, wasmtest.Assemble(t, wasmtest.Module{Run: huge}.Text()))
	if err := r.a.SetTarget(1, json.RawMessage(`{"evil":{"x":true}}`)); err != nil {
		t.Fatal(err)
	}
	r.expect(t, runtime.EventModuleError, "more than the 1048576 allowed")
	r.othersWork(t, 2)
}

func TestHostileLogFlood(t *testing.T) {
	flood := `(local $i i32)
	(loop $again
	  (call $log (i32.const 0) (i32.const 1112) (i32.const 6))
	  (local.set $i (i32.add (local.get $i) (i32.const 1)))
	  (br_if $again (i32.lt_u (local.get $i) (i32.const 100000))))
	` + wasmtest.Packed(wasmtest.OutNull, 2)
	r := startHostile(t, wasmtest.Assemble(t, wasmtest.Module{Run: flood}.Text()))
	if err := r.a.SetTarget(1, json.RawMessage(`{"evil":{"x":true}}`)); err != nil {
		t.Fatal(err)
	}
	r.expect(t, runtime.EventModuleError, "log flood")
	r.othersWork(t, 2)
}

func TestHostileModulesThatDoNotLoad(t *testing.T) {
	for name, tc := range map[string]struct {
		wasm func(t *testing.T) []byte
		want string
	}{
		"exports nothing": {func(t *testing.T) []byte { return wasmtest.Assemble(t, wasmtest.Module{Raw: "(module)"}.Text()) }, "does not export tern_abi_version"},
		"wrong ABI version": {func(t *testing.T) []byte {
			return wasmtest.Assemble(t, wasmtest.Module{Manifest: strings.Replace(wasmtest.Manifest, `"abi":1`, `"abi":99`, 1)}.Text())
		}, "built for ABI 99"},
		"invalid bytes": {func(*testing.T) []byte { return []byte("\x00asm garbage") }, "not a valid module"},
	} {
		t.Run(name, func(t *testing.T) {
			r := startHostile(t, tc.wasm(t))
			r.expect(t, runtime.EventModuleError, tc.want)
			r.othersWork(t, 1)
			if _, ok := r.a.Status().Modules["evil"]; ok {
				t.Fatal("a module that did not load is listed as running")
			}
		})
	}
}

// The skeleton itself is a working module in a second language: the ABI
// needs nothing from Go.
func TestWATModuleWorks(t *testing.T) {
	r := startHostile(t, wasmtest.Assemble(t, wasmtest.Module{}.Text()))
	if err := r.a.SetTarget(1, json.RawMessage(`{"relays":{"heater":true},"evil":{"x":true}}`)); err != nil {
		t.Fatal(err)
	}
	testbound.WaitFor(t, "convergence with a module written in WebAssembly text", func() bool { return r.a.Status().Converged })
	if v := r.a.Status().Modules["evil"]; v != "1.0.0" {
		t.Fatalf("module versions %v", r.a.Status().Modules)
	}
}

// Signed modules: with trusted keys configured, only a module signed by
// one of them, unchanged since, is loaded.
func TestHostileSignatures(t *testing.T) {
	dir := t.TempDir()
	trusted, err := signing.Generate(dir, "operator")
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := signing.ReadPrivate(filepath.Join(dir, "operator.key"))
	if _, err := signing.Generate(dir, "stranger"); err != nil {
		t.Fatal(err)
	}
	strangerKey, _ := signing.ReadPrivate(filepath.Join(dir, "stranger.key"))
	relay, err := wasmbuild.Cached("github.com/tern-iot/tern/plugins/relay")
	if err != nil {
		t.Fatal(err)
	}
	signedRelay, err := modfile.Sign(relay, priv)
	if err != nil {
		t.Fatal(err)
	}
	evil := wasmtest.Assemble(t, wasmtest.Module{}.Text())
	signedEvil, _ := modfile.Sign(evil, priv)
	tampered := append([]byte(nil), signedEvil...)
	tampered[len(evil)/2] ^= 0x01 // one bit in the code, after signing
	byStranger, _ := modfile.Sign(evil, strangerKey)
	appended := modfile.AppendSection(signedEvil, "extra", []byte("after the signature"))

	for name, tc := range map[string]struct {
		wasm []byte
		want string
	}{
		"unsigned":                    {evil, "not signed"},
		"signed by an unknown key":    {byStranger, "does not trust"},
		"tampered after signing":      {tampered, "signature does not match"},
		"section added after signing": {appended, "something was added after the signature"},
	} {
		t.Run(name, func(t *testing.T) {
			r := startHostile(t, tc.wasm, func(o *runtime.Options) {
				o.Trust = signing.NewTrust(trusted)
				o.Modules[0].Wasm = signedRelay
			})
			r.expect(t, runtime.EventModuleError, tc.want)
			r.othersWork(t, 1)
			if _, ok := r.a.Status().Modules["evil"]; ok {
				t.Fatal("a refused module is listed as running")
			}
		})
	}
	t.Run("signed by a trusted key", func(t *testing.T) {
		r := startHostile(t, signedEvil, func(o *runtime.Options) {
			o.Trust = signing.NewTrust(trusted)
			o.Modules[0].Wasm = signedRelay
		})
		r.othersWork(t, 1)
		if v := r.a.Status().Modules["evil"]; v != "1.0.0" {
			t.Fatalf("signed module not loaded: %v", r.a.Status().Modules)
		}
	})
}

// A new version that keeps failing is rolled back to the one it replaced,
// with an event that says why, and stays rolled back across restarts.
func TestRollbackAfterRepeatedFailures(t *testing.T) {
	good := wasmtest.Assemble(t, wasmtest.Module{}.Text())
	badManifest := strings.Replace(wasmtest.Manifest, `"1.0.0"`, `"2.0.0"`, 1)
	bad := wasmtest.Assemble(t, wasmtest.Module{Manifest: badManifest, Run: `(unreachable)`}.Text())
	dir := t.TempDir()
	lines := sim.NewGPIO("GPIO17")
	start := func(wasm []byte) (*runtime.Agent, *recorder, func()) {
		st, err := backend.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		rep := &recorder{}
		a, stop := runAgent(t, runtime.Options{
			Store: st, GPIO: lines, CacheDir: sharedCache, Reporter: rep, Logger: testLogger(t),
			RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond,
			Modules: []runtime.ModuleSpec{{Name: "evil", Wasm: wasm}},
		})
		return a, rep, stop
	}
	// Version 1 is installed and works.
	a, rep, stop := start(good)
	if err := a.SetTarget(1, json.RawMessage(`{"evil":{"a":true}}`)); err != nil {
		t.Fatal(err)
	}
	testbound.WaitFor(t, "version 1 converging", func() bool { return a.Status().Converged })
	stop()

	// Version 2 replaces it and traps on every run.
	a, rep, stop = start(bad)
	if v := a.Status().Modules["evil"]; v != "2.0.0" {
		t.Fatalf("running %q, want the new version 2.0.0", v)
	}
	if err := a.SetTarget(2, json.RawMessage(`{"evil":{"b":true}}`)); err != nil {
		t.Fatal(err)
	}
	testbound.WaitFor(t, "the rollback event", func() bool {
		_, ok := rep.find(runtime.EventModuleRolledBack, "version 2.0.0 failed 3 calls in a row")
		return ok
	})
	if e, _ := rep.find(runtime.EventModuleRolledBack, ""); !strings.Contains(e.Message, "unreachable") || !strings.Contains(e.Message, "rolled back to version 1.0.0") {
		t.Fatalf("the event must say why and to what: %q", e.Message)
	}
	testbound.WaitFor(t, "convergence on version 1", func() bool { return a.Status().Converged && a.Status().Modules["evil"] == "1.0.0" })
	stop()

	// Restarted with the bad code still configured: it stays rolled back.
	a, rep, stop = start(bad)
	defer stop()
	if v := a.Status().Modules["evil"]; v != "1.0.0" {
		t.Fatalf("after restart running %q, want the rolled-back-to 1.0.0", v)
	}
	testbound.WaitFor(t, "an event saying the configured code stays rolled back", func() bool {
		_, ok := rep.find(runtime.EventModuleError, "was rolled back")
		return ok
	})
}
