package wasmhost

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/tern-iot/tern/runtime/internal/wasmtest"
)

// A mapped memory keeps its bytes as it grows, and what it grows by reads
// zero.
func TestMappedMemoryGrows(t *testing.T) {
	mem := newLinearMemory(0, 1<<30)
	defer mem.Free()
	b := mem.Reallocate(64 << 10)
	if len(b) != 64<<10 {
		t.Fatalf("first allocation: %d bytes, want %d", len(b), 64<<10)
	}
	copy(b, "tern")
	copy(b[len(b)-4:], "last")
	for _, size := range []uint64{128 << 10, 64 << 20, 64 << 20, 65 << 20} {
		b = mem.Reallocate(size)
		if uint64(len(b)) != size {
			t.Fatalf("grown to %d bytes, want %d", len(b), size)
		}
		if string(b[:4]) != "tern" || string(b[64<<10-4:64<<10]) != "last" {
			t.Fatalf("growing to %d bytes lost the memory's bytes", size)
		}
		if !bytes.Equal(b[64<<10:64<<10+4096], make([]byte, 4096)) || b[len(b)-1] != 0 {
			t.Fatalf("growing to %d bytes: the new bytes are not zero", size)
		}
	}
	mem.Free()
	mem.Free() // wazero may free what memories.free did: nothing happens
}

// The memory of an instantiation that fails is unmapped: wazero drops an
// instance whose start section trapped without closing it, and the
// garbage collector does not own the mapping. 40 failed instantiations
// of 64 MiB each would otherwise hold 2.5 GiB.
func TestFailedInstantiationFreesItsMemory(t *testing.T) {
	ctx := context.Background()
	h, err := New(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	// A start section that grows the memory by 64 MiB, writes its last
	// page, and traps.
	text := strings.Replace(wasmtest.Module{}.Text(), `(func (export "_initialize"))`, `(func (export "_initialize"))
  (start $boom)
  (func $boom
    (drop (memory.grow (i32.const 1024)))
    (i32.store (i32.sub (i32.mul (memory.size) (i32.const 65536)) (i32.const 4)) (i32.const 1))
    (unreachable))`, 1)
	wasm := wasmtest.Assemble(t, text)
	before := vmSize(t)
	for range 40 {
		if _, err := h.Load(ctx, wasm, Grants{}, nil); err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("loading a module whose start section traps: %v", err)
		}
	}
	if grown := vmSize(t) - before; grown > 512<<20 {
		t.Fatalf("address space grew by %d MiB over 40 failed instantiations", grown>>20)
	}
}

func vmSize(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmSize:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmSize in /proc/self/status")
	return 0
}
