package wasmhost

import (
	"bytes"
	"context"
	"testing"

	"github.com/tetratelabs/wazero"
)

// dataImage writes a module's active data segments, in order, into a
// memory image as instantiation does, and returns it and the number of
// segments. The module must have only constant offsets.
func dataImage(t testing.TB, wasm []byte) ([]byte, int) {
	t.Helper()
	var img []byte
	segs := 0
	r := reader{b: wasm[8:], off: 8}
	for len(r.b) > 0 {
		id, _ := r.byte()
		size, _ := r.u32()
		sec := r.sub(int(size))
		if id != 11 {
			continue
		}
		n, _ := sec.u32()
		for range n {
			flags, _ := sec.u32()
			if flags == 1 {
				size, _ := sec.u32()
				sec.sub(int(size))
				continue
			}
			if flags == 2 {
				sec.u32()
			}
			at, ok := sec.i32Const()
			if !ok {
				t.Fatal("dataImage: an offset that is not i32.const")
			}
			size, _ := sec.u32()
			b := sec.sub(int(size)).b
			if end := int(at) + len(b); end > len(img) {
				img = append(img, make([]byte, end-len(img))...)
			}
			copy(img[at:], b)
			segs++
		}
	}
	return img, segs
}

// dataModule is a module with a memory of pages pages and segs as its
// data section's segments (already encoded), and, if count, a data count
// section.
func dataModule(pages uint32, count bool, segs ...[]byte) []byte {
	memory := sec(5, vec(1, []byte{0}, u32(pages)))
	data := sec(11, vec(uint32(len(segs)), segs...))
	if count {
		return mod(memory, sec(12, u32(uint32(len(segs)))), data)
	}
	return mod(memory, data)
}

func active(at int32, data string) []byte {
	return cat([]byte{0, 0x41}, appendS32(nil, at), []byte{0x0b}, u32(uint32(len(data))), []byte(data))
}

func passive(data string) []byte { return cat([]byte{1}, u32(uint32(len(data))), []byte(data)) }

func TestPrecheckMergesData(t *testing.T) {
	for _, c := range []struct {
		name  string
		count bool
		segs  [][]byte
		want  int // segments after precheck
	}{
		{"adjacent", false, [][]byte{active(0, "ab"), active(2, "cd")}, 1},
		{"small gaps", false, [][]byte{active(10, "ab"), active(20, "cd"), active(20+2+maxDataGap, "ef")}, 1},
		{"a gap too wide", false, [][]byte{active(10, "ab"), active(12+maxDataGap+1, "cd")}, 2},
		{"out of order", false, [][]byte{active(20, "cd"), active(10, "ab")}, 2},
		{"a run, a jump back, a run", false, [][]byte{active(100, "ab"), active(104, "cd"), active(10, "ef"), active(14, "gh")}, 2},
		// A later segment in the gap keeps the two around it apart: their
		// merge would not write it, but the jump back is its own run.
		{"another in the gap", false, [][]byte{active(10, "ab"), active(30, "cd"), active(20, "ef")}, 3},
		{"overlapping", false, [][]byte{active(10, "abcd"), active(12, "ef"), active(20, "gh"), active(22, "ij")}, 4},
		{"passive between", false, [][]byte{active(0, "ab"), passive("xy"), active(4, "cd")}, 3},
		{"empty between", false, [][]byte{active(0, "ab"), active(3, ""), active(4, "cd")}, 3},
		{"data count", true, [][]byte{active(0, "ab"), active(2, "cd")}, 2},
		{"global offset", false, [][]byte{active(0, "ab"), active(2, "cd"), cat([]byte{0, 0x23, 0, 0x0b}, u32(1), []byte("x"))}, 3},
		{"one", false, [][]byte{active(0, "ab")}, 1},
		{"negative offset", false, [][]byte{active(0, "ab"), active(-1, "cd")}, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := dataModule(1, c.count, c.segs...)
			out, err := precheck(in, 1<<16)
			if err != nil {
				t.Fatal(err)
			}
			if again, err := precheck(out, 1<<16); err != nil || !bytes.Equal(again, out) {
				t.Fatalf("precheck of its own output: %v (rewritten: %t)", err, !bytes.Equal(again, out))
			}
			r := reader{b: out[8:]}
			n := uint32(0)
			for len(r.b) > 0 {
				id, _ := r.byte()
				size, _ := r.u32()
				sec := r.sub(int(size))
				if id == 11 {
					n, _ = sec.u32()
				}
			}
			if int(n) != c.want {
				t.Fatalf("%d segments after precheck, want %d", n, c.want)
			}
			sameInstance(t, in, out)
		})
	}
}

// sameInstance instantiates both modules and checks that both fail, or
// that both succeed with the same memory.
func sameInstance(t testing.TB, in, out []byte) {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, compileConfig)
	defer rt.Close(ctx)
	memory := func(wasm []byte) ([]byte, error) {
		m, err := rt.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName(""))
		if err != nil {
			return nil, err
		}
		defer m.Close(ctx)
		if m.Memory() == nil {
			return nil, nil
		}
		b, _ := m.Memory().Read(0, m.Memory().Size())
		return bytes.Clone(b), nil
	}
	a, aerr := memory(in)
	b, berr := memory(out)
	if (aerr == nil) != (berr == nil) {
		t.Fatalf("as written: %v; merged: %v", aerr, berr)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("the merged module's memory differs from the module's own")
	}
}

// FuzzPrecheckData builds a module whose data segments the input lays
// out (offsets near one another, in and out of order, overlapping,
// passive, past the memory's end) and checks that merging them changes
// nothing an instance sees: both instantiate with the same memory, or
// both fail.
func FuzzPrecheckData(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 3, 1, 4, 2, 5, 9, 9, 0, 0, 0, 64, 7})
	f.Add(noise(7, 120))
	f.Fuzz(func(t *testing.T, in []byte) {
		src := fuzzSource{b: in}
		var segs [][]byte
		at := int32(src.byte()) * 4
		for n := int(src.byte()%40) + 1; n > 0; n-- {
			data := make([]byte, src.byte()%24)
			for i := range data {
				data[i] = byte(n + i + 1)
			}
			switch op := src.byte(); {
			case op < 8:
				segs = append(segs, passive(string(data)))
				continue
			case op < 24:
				at -= int32(src.byte()) // back, into or before earlier ones
			case op < 28:
				at = 65536 - int32(src.byte()) // at the memory's end
			default:
				at += int32(src.byte() % (2 * maxDataGap))
			}
			segs = append(segs, active(at, string(data)))
			at += int32(len(data))
		}
		mod := dataModule(1, src.byte() == 1, segs...)
		out, err := precheck(mod, 1<<16)
		if err != nil {
			t.Fatalf("precheck: %v\n% x", err, mod)
		}
		if again, err := precheck(out, 1<<16); err != nil || !bytes.Equal(again, out) {
			t.Fatalf("precheck of its own output: %v (rewritten: %t)", err, !bytes.Equal(again, out))
		}
		sameInstance(t, mod, out)
	})
}
