package wasmhost

import (
	"math"
	"runtime"
	"sync"

	"github.com/tetratelabs/wazero/experimental"
	"golang.org/x/sys/unix"
)

// mappedMemory is a linear memory in an anonymous private mapping. It
// grows with mremap, which moves page tables rather than bytes, and the
// pages it never touches take no memory. Should the system refuse the
// first mapping, it falls back to a slice in Go's heap, as wazero's own
// memory is; a growth the system refuses fails inside the module
// (memory.grow returns -1), where a Go heap that cannot grow would end
// the agent.
type mappedMemory struct {
	mu sync.Mutex
	m  *mapping
}

// mapping is held apart from mappedMemory so that the cleanup, which
// must not keep mappedMemory reachable, can unmap it.
type mapping struct {
	b    []byte // the mapping (len == cap), or the heap fallback
	heap bool
}

func newLinearMemory(_, _ uint64) experimental.LinearMemory {
	mem := &mappedMemory{m: &mapping{}}
	// A safety net only: every instance is closed (Free), and a failed
	// instantiation is freed by memories.free.
	runtime.AddCleanup(mem, func(m *mapping) { m.unmap() }, mem.m)
	return mem
}

// Reallocate implements experimental.LinearMemory. wazero asks only for
// growth (a memory never shrinks), and for the minimum first.
func (mem *mappedMemory) Reallocate(size uint64) []byte {
	mem.mu.Lock()
	defer mem.mu.Unlock()
	m := mem.m
	if size > math.MaxInt {
		return nil
	}
	n := int(size)
	switch {
	case n <= len(m.b):
		return m.b[:n]
	case m.heap:
		m.b = append(m.b, make([]byte, n-len(m.b))...)
		return m.b
	case len(m.b) == 0:
		b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			b, m.heap = make([]byte, n), true
		}
		m.b = b
		return b
	default:
		b, err := unix.Mremap(m.b, n, unix.MREMAP_MAYMOVE)
		if err != nil {
			return nil
		}
		m.b = b
		return b
	}
}

// Free implements experimental.LinearMemory.
func (mem *mappedMemory) Free() {
	mem.mu.Lock()
	defer mem.mu.Unlock()
	mem.m.unmap()
}

func (m *mapping) unmap() {
	if len(m.b) > 0 && !m.heap {
		unix.Munmap(m.b)
	}
	m.b = nil
}
