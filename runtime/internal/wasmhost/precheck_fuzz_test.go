package wasmhost

import (
	"bytes"
	"context"
	"runtime"
	"testing"

	"github.com/tetratelabs/wazero"
)

// FuzzPrecheckStructured turns the fuzz input into a module with a sound
// frame (header, section ids and sizes, LEB128 numbers) whose declared
// counts, lengths, limits and nesting the input chooses, often huge. Raw
// mutations rarely get past a section header; these get to every nested
// count. Properties: precheck never panics; what it accepts it accepts
// again unchanged (its table rewriting and data merging are complete);
// and wazero decodes
// and compiles what it accepts, or refuses it, without allocating more
// than 64 MiB and 200 bytes per module byte. A gap in precheck shows as
// an input over that bound, or as a worker killed by the Go runtime's
// out-of-memory error, which the fuzzer reports with its input.
// Function bodies stay small: the compiler's superlinear shapes (see
// precheck) are beyond what precheck bounds.
func FuzzPrecheckStructured(f *testing.F) {
	f.Add([]byte{})                              // every section, honest counts
	f.Add(bytes.Repeat([]byte{1}, 64))           // a little of everything
	f.Add(bytes.Repeat([]byte{0, 3, 7, 1}, 100)) // hostile counts here and there
	f.Add(bytes.Repeat([]byte{0xff, 0}, 200))
	f.Add([]byte{9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 0x40, 0x40, 5, 5, 5, 5})
	for i := range 16 { // the mutator starts far from the few above
		f.Add(noise(uint32(i), 300))
	}
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, compileConfig)
	f.Cleanup(func() { rt.Close(ctx) })
	f.Fuzz(func(t *testing.T, in []byte) {
		precheck(in, 1<<16) // the input as a module: must not panic either
		out, err := precheck(generateModule(in), 1<<16)
		if err != nil {
			return
		}
		if again, err := precheck(out, 1<<16); err != nil || !bytes.Equal(again, out) {
			t.Fatalf("precheck of its own output: %v (rewritten: %t)", err, !bytes.Equal(again, out))
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		c, err := rt.CompileModule(ctx, out)
		runtime.ReadMemStats(&after)
		if err == nil {
			c.Close(ctx)
		}
		bound := 64<<20 + 200*uint64(len(out))
		if got := after.TotalAlloc - before.TotalAlloc; got > bound {
			t.Fatalf("compiling a %d-byte module that precheck accepted allocated %d MiB, more than the %d MiB allowed (compile error: %v)",
				len(out), got>>20, bound>>20, err)
		}
	})
}

// TestFuzzGeneratorBaseline checks that the generator is worth fuzzing
// with: an empty input (every choice its first) makes a module with every
// section, which precheck accepts and wazero compiles.
func TestFuzzGeneratorBaseline(t *testing.T) {
	wasm := generateModule(nil)
	out, err := precheck(wasm, 1<<16)
	if err != nil {
		t.Fatalf("precheck: %v\n% x", err, wasm)
	}
	if err := compileModule(t, out); err != nil {
		t.Fatalf("wazero: %v\n% x", err, out)
	}
	for id := byte(0); id <= 12; id++ {
		if !bytes.Contains(sectionIDs(out), []byte{id}) {
			t.Errorf("no section %d", id)
		}
	}
}

// noise is n bytes of xorshift from seed.
func noise(seed uint32, n int) []byte {
	b := make([]byte, n)
	x := seed*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

func sectionIDs(wasm []byte) []byte {
	var ids []byte
	r := reader{b: wasm[8:]}
	for len(r.b) > 0 {
		id, _ := r.byte()
		size, _ := r.u32()
		r.sub(int(size))
		ids = append(ids, id)
	}
	return ids
}

// fuzzSource hands out the fuzz input's bytes, then zeros: every input
// makes a module, and a zero always picks the first, ordinary choice.
type fuzzSource struct {
	b []byte
	// lies is how often a count is not the truth: never, or about one
	// in 64, 8 or 2. A module with dozens of counts is refused at its
	// first lie: the honest ones are what reach wazero's compiler.
	lies int
}

func (s *fuzzSource) byte() byte {
	if len(s.b) == 0 {
		return 0
	}
	c := s.b[0]
	s.b = s.b[1:]
	return c
}

// n picks a number below k.
func (s *fuzzSource) n(k int) int { return int(s.byte()) % k }

// few picks how many entries to write.
func (s *fuzzSource) few() int { return s.n(4) }

// lie reports whether to write something other than the truth.
func (s *fuzzSource) lie() bool {
	return s.lies > 0 && s.n([...]int{0, 64, 8, 2}[s.lies]) == 1
}

// hostile are the counts worth declaring: around the powers of two and
// the limits of precheck and wazero.
var hostile = []uint32{
	0, 1, 2, 127, 128, 255, 1023, 1024, 1025, 1 << 14, 1<<16 - 1, 1 << 16, 1<<16 + 1,
	50000, 50001, 1 << 20, 1 << 24, 1 << 27, 1<<27 + 1, 1<<31 - 1, 1 << 31, 1<<32 - 1,
}

// count is what a vector of actual entries declares: the truth, or a
// little or a lot more, or less.
func (s *fuzzSource) count(actual int) uint32 {
	if !s.lie() {
		return uint32(actual)
	}
	switch s.n(3) {
	case 0:
		return uint32(actual) + 1 + uint32(s.byte())
	case 1:
		return uint32(max(actual-1, 0))
	}
	return hostile[s.n(len(hostile))]
}

// number picks a limit, an index or a number of locals: small, or
// hostile.
func (s *fuzzSource) number() uint32 {
	if s.lie() {
		return hostile[s.n(len(hostile))]
	}
	return uint32(s.n(4))
}

// modGen writes one module from a fuzzSource. It keeps what the module
// has declared so far, so that an honest module is a valid one.
type modGen struct {
	s       *fuzzSource
	imports int    // imported functions
	funcs   int    // defined functions, all of type 0: () -> ()
	tables  []byte // the reference type of each
	memory  bool
	data    int // data segments
}

func generateModule(in []byte) []byte {
	g := &modGen{s: &fuzzSource{b: in}}
	g.s.lies = g.s.n(4)
	g.funcs = 1 + g.s.few()
	g.data = g.s.few()
	out := []byte("\x00asm\x01\x00\x00\x00")
	for _, id := range []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 10, 11, 0} {
		switch g.s.n(16) {
		case 14: // left out
			if id != 3 && id != 10 && id != 12 {
				continue
			}
		case 15: // a custom section between
			out = append(out, sec(0, str("x"), []byte{g.s.byte()})...)
		}
		out = append(out, sec(id, g.section(id))...)
	}
	return out
}

func (g *modGen) vec(n int, entry func(i int) []byte) []byte {
	b := u32(g.s.count(n))
	for i := range n {
		b = append(b, entry(i)...)
	}
	return b
}

// name is a name of a few bytes, its length maybe a lie.
func (g *modGen) name(prefix string, i int) []byte {
	s := prefix + string(rune('a'+i%26))
	return cat(u32(g.s.count(len(s))), []byte(s))
}

var valTypes = []byte{0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f}

func (g *modGen) valType() byte { return valTypes[g.s.n(len(valTypes))] }

func (g *modGen) limits() []byte {
	flags := byte(g.s.n(2))
	min := g.s.number()
	b := cat([]byte{flags}, u32(min))
	if flags == 1 {
		max := min + uint32(g.s.n(4))
		if g.s.lie() || max < min {
			max = g.s.number()
		}
		b = append(b, u32(max)...)
	}
	return b
}

func (g *modGen) tableType() []byte {
	t := []byte{0x70, 0x6f}[g.s.n(2)]
	g.tables = append(g.tables, t)
	return cat([]byte{t}, g.limits())
}

// constExpr is an i32 constant expression.
func (g *modGen) constExpr() []byte {
	return cat([]byte{0x41}, u32(uint32(g.s.n(64))), []byte{0x0b})
}

func (g *modGen) section(id byte) []byte {
	s := g.s
	switch id {
	case 0:
		sub := func(id byte, content []byte) []byte {
			return cat([]byte{id}, u32(uint32(len(content))), content)
		}
		nameMap := func() []byte {
			return g.vec(s.few(), func(i int) []byte { return cat(u32(uint32(i)), g.name("n", i)) })
		}
		return cat(str("name"),
			sub(0, g.name("m", 0)),
			sub(1, nameMap()),
			sub(2, g.vec(s.few(), func(i int) []byte { return cat(u32(uint32(i)), nameMap()) })))
	case 1:
		return g.vec(1+s.few(), func(i int) []byte {
			ft := []byte{0x60, 0, 0} // type 0 is the functions' type: () -> ()
			if i > 0 || s.lie() {
				valTypes := func() []byte {
					return g.vec(s.few(), func(int) []byte { return []byte{g.valType()} })
				}
				ft = cat([]byte{0x60}, valTypes(), valTypes())
			}
			if s.n(8) == 7 {
				return cat([]byte{0x4e}, g.vec(1, func(int) []byte { return ft }))
			}
			return ft
		})
	case 2:
		return g.vec(s.few(), func(i int) []byte {
			head := cat(g.name("m", i), g.name("f", i))
			switch s.n(4) {
			case 1:
				return cat(head, []byte{1}, g.tableType())
			case 2:
				if !g.memory {
					g.memory = true
					return cat(head, []byte{2}, g.limits())
				}
			case 3:
				return cat(head, []byte{3, g.valType(), byte(s.n(2))})
			}
			g.imports++
			return cat(head, []byte{0}, u32(0))
		})
	case 3:
		return g.vec(g.funcs, func(int) []byte { return u32(0) })
	case 4:
		return g.vec(s.few(), func(int) []byte { return g.tableType() })
	case 5:
		n := 0
		if !g.memory {
			n, g.memory = 1, true
		}
		return g.vec(n, func(int) []byte { return g.limits() })
	case 6:
		return g.vec(s.few(), func(int) []byte { return cat([]byte{0x7f, byte(s.n(2))}, g.constExpr()) })
	case 7:
		return g.vec(s.few(), func(i int) []byte { return cat(g.name("e", i), []byte{0}, u32(0)) })
	case 8:
		return u32(uint32(g.imports)) // the first defined function
	case 9:
		n := s.few()
		if len(g.tables) == 0 || g.tables[0] != 0x70 {
			n = 0
		}
		return g.vec(n, func(int) []byte { return g.element() })
	case 10:
		return g.vec(g.funcs, func(int) []byte {
			locals := g.vec(1+s.few(), func(i int) []byte {
				if i == 0 {
					return []byte{4, 0x7f} // local.get 0 to 3 are i32s
				}
				return cat(u32(g.s.number()), []byte{g.valType()})
			})
			body := cat(locals, g.instructions(), []byte{0x0b})
			return cat(u32(g.s.count(len(body))), body)
		})
	case 11:
		if !g.memory {
			g.data = 0
		}
		return g.vec(g.data, func(int) []byte {
			content := bytes.Repeat([]byte{'d'}, s.few())
			switch s.n(3) {
			case 1:
				return cat([]byte{1}, u32(s.count(len(content))), content)
			case 2:
				return cat([]byte{2, 0}, g.constExpr(), u32(s.count(len(content))), content)
			}
			return cat([]byte{0}, g.constExpr(), u32(s.count(len(content))), content)
		})
	case 12:
		return u32(uint32(g.data))
	}
	return nil
}

// element writes an element segment in one of its eight encodings, for
// table 0, a funcref table.
func (g *modGen) element() []byte {
	s := g.s
	flags := byte(s.n(8))
	b := []byte{flags}
	if flags&3 == 2 {
		b = append(b, 0) // table 0
	}
	if flags&1 == 0 {
		b = append(b, 0x41, 0, 0x0b) // offset 0
	}
	if flags != 0 && flags != 4 {
		if flags&4 != 0 {
			b = append(b, 0x70)
		} else {
			b = append(b, 0) // element kind
		}
	}
	return cat(b, g.vec(s.few(), func(int) []byte {
		if flags&4 != 0 {
			return []byte{0xd2, 0, 0x0b} // ref.func 0
		}
		return u32(0)
	}))
}

// instructions writes a function body's instructions, not its final end.
func (g *modGen) instructions() []byte {
	s := g.s
	var b []byte
	for range s.n(32) {
		switch s.n(12) {
		case 0:
			b = append(b, 0x01) // nop
		case 1: // blocks nested deep
			depth := int(s.count(1 + s.n(8)))
			depth = min(depth, 4*maxNesting) // a module the size of the nesting
			open := []byte{0x02, 0x40}
			switch s.n(3) {
			case 1:
				open = []byte{0x03, 0x40}
			case 2:
				open = []byte{0x41, 0, 0x04, 0x40}
			}
			b = cat(b, bytes.Repeat(open, depth), g.simple(), bytes.Repeat([]byte{0x0b}, depth))
		case 2: // br_table to the function's label
			n := s.few()
			b = cat(b, []byte{0x41, 0, 0x0e}, u32(s.count(n)), bytes.Repeat([]byte{0}, n), []byte{0})
		case 3: // an opcode from the input, and maybe immediates
			if s.lie() {
				b = append(b, s.byte(), s.byte(), s.byte())
			}
		case 4:
			b = cat(b, []byte{0xfd, 0x0c}, bytes.Repeat([]byte{s.byte()}, 16), []byte{0x1a}) // v128.const, drop
		case 5:
			if g.memory {
				b = cat(b, []byte{0x41, 0, 0x28, 2}, u32(s.number()), []byte{0x1a}) // i32.load, drop
			}
		case 6:
			if g.memory {
				b = cat(b, []byte{0x41, 1, 0x40, 0, 0x1a}) // memory.grow, drop
			}
		case 7:
			if g.memory {
				b = cat(b, []byte{0x41, 0, 0x41, 0, 0x41, 1, 0xfc, 11, 0}) // memory.fill
			}
		case 8:
			if t := s.n(4); t < len(g.tables) {
				b = cat(b, []byte{0xd0, g.tables[t], 0x41, 1, 0xfc, 15}, u32(uint32(t)), []byte{0x1a}) // table.grow, drop
			}
		case 9:
			b = cat(b, []byte{0x10}, u32(uint32(s.n(g.imports+g.funcs)))) // call
		case 10:
			b = cat(b, []byte{0x41, 0, 0x04, 0x40}, g.simple(), []byte{0x05}, g.simple(), []byte{0x0b}) // if, else
		default:
			b = append(b, g.simple()...)
		}
	}
	return b
}

// simple writes a few instructions that leave the stack as they found it.
func (g *modGen) simple() []byte {
	var b []byte
	for range g.s.few() {
		switch g.s.n(3) {
		case 0:
			b = cat(b, []byte{0x41}, u32(uint32(g.s.byte())), []byte{0x1a}) // i32.const, drop
		case 1:
			index := uint32(g.s.n(4))
			if g.s.lie() {
				index = g.s.number()
			}
			b = cat(b, []byte{0x20}, u32(index), []byte{0x1a}) // local.get, drop
		case 2:
			b = append(b, 0x0c, 0) // br 0
		}
	}
	return b
}
