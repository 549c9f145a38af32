package wasmhost_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/internal/wasmbuild"
	"github.com/tern-iot/tern/runtime/internal/wasmhost"
	"github.com/tern-iot/tern/runtime/internal/wasmtest"
	"github.com/tern-iot/tern/sdk/abi"
)

// The sandbox's costs, per call (sdk/ABI.md; the closing notes quote them).

// BenchmarkHostToGuest: one job call into a module that does nothing (the
// WAT skeleton), and one tern_try into the Go relay module.
func BenchmarkHostToGuest(b *testing.B) {
	for _, engine := range []string{"compiler", "interpreter"} {
		b.Run(engine, func(b *testing.B) { hostToGuest(b, engine == "interpreter") })
	}
}

func hostToGuest(b *testing.B, interpreter bool) {
	ctx := context.Background()
	h, err := wasmhost.New(ctx, wasmhost.Options{Interpreter: interpreter})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close(ctx)
	wat, err := h.Load(ctx, wasmtest.Assemble(b, wasmtest.Module{}.Text()), wasmhost.Grants{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("wat-run", func(b *testing.B) {
		for b.Loop() {
			if _, err := wat.Call(ctx, wasmhost.PhaseRun, "run", abi.Call{Job: "poke", Path: "/evil/x"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	relay, err := wasmbuild.Cached("github.com/tern-iot/tern/plugins/relay")
	if err != nil {
		b.Fatal(err)
	}
	m, err := h.Load(ctx, relay, wasmhost.Grants{}, []byte(`{"lines":{"heater":"GPIO17"}}`))
	if err != nil {
		b.Fatal(err)
	}
	c := abi.Call{Job: "switch", Path: "/relays/heater", Params: map[string]string{"name": "heater"}, Current: []byte("false"), Target: []byte("true")}
	b.Run("go-relay-try", func(b *testing.B) {
		for b.Loop() {
			if _, err := m.Try(ctx, c); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGuestToHost: gpio_write on the sim board, from a module that
// writes 1,000 times per call, reported per write; the module's share of
// it (loop: the same loop, storing the level where it called gpio_write;
// every iteration of a loop pays an exit for the call's deadline check,
// RATIONALE.md "Planning across the sandbox"); and the line's (sim-line:
// the same writes on the line itself, with no module and no host, as
// hal/sim's BenchmarkGPIOOut). What the host adds is module - loop -
// sim-line.
func BenchmarkGuestToHost(b *testing.B) {
	b.Run("module", func(b *testing.B) { guestToHost(b, true) })
	b.Run("loop", func(b *testing.B) { guestToHost(b, false) })
	b.Run("sim-line", func(b *testing.B) {
		p, err := sim.NewGPIO("GPIO17").Pin("GPIO17")
		if err != nil {
			b.Fatal(err)
		}
		var l gpio.Level
		for b.Loop() {
			l = !l
			if err := p.Out(l); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/gpio_write")
	})
}

// guestToHost calls modules that each write GPIO17 1,000 times (or, if
// not write, loop as often without calling the host). Every write must
// reach the line: a refused one would be measured as a cheaper write. A
// module's grant allows a million writes a second (the most a grant can),
// fewer than a fast host makes, so the calls go round the modules, each
// with its own budget.
func guestToHost(b *testing.B, write bool) {
	ctx := context.Background()
	lines := sim.NewGPIO("GPIO17")
	h, err := wasmhost.New(ctx, wasmhost.Options{GPIO: lines})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close(ctx)
	const writes, modules = 1000, 16
	body := fmt.Sprintf("(drop (call $gpio_write (i32.const %d) (i32.const 6) (i32.and (local.get $i) (i32.const 1))))", wasmtest.Strings)
	if !write {
		body = "(i32.store (i32.const 2900) (i32.and (local.get $i) (i32.const 1)))"
	}
	run := fmt.Sprintf(`(local $i i32)
	(loop $again
	  %s
	  (local.set $i (i32.add (local.get $i) (i32.const 1)))
	  (br_if $again (i32.lt_u (local.get $i) (i32.const %d))))
	%s`, body, writes, wasmtest.Packed(wasmtest.OutNull, 2))
	wasm := wasmtest.Assemble(b, wasmtest.Module{Run: run}.Text())
	var ms []*wasmhost.Module
	for range modules {
		m, err := h.Load(ctx, wasm, wasmhost.Grants{GPIO: []string{"GPIO17@1000000/s"}}, nil)
		if err != nil {
			b.Fatal(err)
		}
		ms = append(ms, m)
	}
	calls := 0
	for b.Loop() {
		if _, err := ms[calls%modules].Call(ctx, wasmhost.PhaseRun, "run", abi.Call{Job: "poke", Path: "/evil/x"}); err != nil {
			b.Fatal(err)
		}
		calls++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(calls*writes), "ns/gpio_write")
	if got := lines.Writes("GPIO17"); write && got != calls*writes {
		b.Fatalf("%d of %d writes reached the board: the rest were refused (past their rate?)", got, calls*writes)
	}
}

// BenchmarkLoad: compiling a module with no cache, and loading it from the
// on-disk cache; and each instance's memory.
func BenchmarkLoad(b *testing.B) {
	ctx := context.Background()
	relay, err := wasmbuild.Cached("github.com/tern-iot/tern/plugins/relay")
	if err != nil {
		b.Fatal(err)
	}
	for name, wasm := range map[string][]byte{"go-relay": relay, "wat": wasmtest.Assemble(b, wasmtest.Module{}.Text())} {
		b.Run(name+"/cold", func(b *testing.B) {
			for b.Loop() {
				load(b, ctx, b.TempDir(), wasm)
			}
		})
		dir := b.TempDir()
		load(b, ctx, dir, wasm) // fill the cache
		b.Run(name+"/cached", func(b *testing.B) {
			var mem uint32
			for b.Loop() {
				mem = load(b, ctx, dir, wasm)
			}
			b.ReportMetric(float64(mem), "bytes/instance")
		})
	}
}

// load loads wasm with a cache in dir, runs one call and returns the
// instance's memory size.
func load(b testing.TB, ctx context.Context, dir string, wasm []byte) uint32 {
	h, err := wasmhost.New(ctx, wasmhost.Options{CacheDir: dir})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close(ctx)
	m, err := h.Load(ctx, wasm, wasmhost.Grants{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	return m.MemorySize()
}

// BenchmarkGuestToHostI2C: i2c_tx reading a simulated TMP102, 1,000 times
// per call; reported per transaction.
func BenchmarkGuestToHostI2C(b *testing.B) {
	ctx := context.Background()
	bus := sim.NewI2C("i2c1")
	bus.Attach("i2c1", 0x48, sim.NewTMP102(21))
	h, err := wasmhost.New(ctx, wasmhost.Options{I2C: bus})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close(ctx)
	const txs = 1000
	// "i2c1" is at Strings+18; write the pointer byte 0 from 2100, read 2
	// bytes into 2200.
	run := fmt.Sprintf(`(local $i i32)
	(loop $again
	  (drop (call $i2c_tx (i32.const %d) (i32.const 4) (i32.const 0x48) (i32.const 2100) (i32.const 1) (i32.const 2200) (i32.const 2)))
	  (local.set $i (i32.add (local.get $i) (i32.const 1)))
	  (br_if $again (i32.lt_u (local.get $i) (i32.const %d))))
	%s`, wasmtest.Strings+18, txs, wasmtest.Packed(wasmtest.OutNull, 2))
	m, err := h.Load(ctx, wasmtest.Assemble(b, wasmtest.Module{Run: run}.Text()), wasmhost.Grants{I2C: []string{"i2c1:0x48"}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := m.Call(ctx, wasmhost.PhaseRun, "run", abi.Call{Job: "poke", Path: "/evil/x"}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*txs), "ns/i2c_tx")
	if bus.Transactions("i2c1", 0x48) < txs {
		b.Fatal("the transactions did not reach the bus")
	}
}
