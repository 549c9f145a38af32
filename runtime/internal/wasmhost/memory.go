package wasmhost

import (
	"context"
	"sync"

	"github.com/tetratelabs/wazero/experimental"
)

// memories allocates the linear memory of one instantiation, outside Go's
// heap where the system allows (memory_linux.go): a Go module's memory
// then neither counts toward the agent's garbage collection goal nor
// leaves copies behind as it grows, and its pages go back to the system
// the moment the instance is closed (RATIONALE.md, "Module memory outside
// the heap"). It remembers what it allocated, so that an instantiation
// that fails (its start function trapped) frees it: wazero drops such an
// instance without closing it, and only closing frees memory that the
// garbage collector does not own.
type memories struct {
	mu   sync.Mutex
	list []experimental.LinearMemory
}

// Allocate implements experimental.MemoryAllocator.
func (a *memories) Allocate(cap, max uint64) experimental.LinearMemory {
	m := newLinearMemory(cap, max)
	a.mu.Lock()
	a.list = append(a.list, m)
	a.mu.Unlock()
	return m
}

// free frees what a failed instantiation allocated. Free may be called
// again (by wazero, closing): it does nothing the second time.
func (a *memories) free() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, m := range a.list {
		m.Free()
	}
	a.list = nil
}

// withMemories has instantiations under ctx allocate memory from a.
func withMemories(ctx context.Context, a *memories) context.Context {
	return experimental.WithMemoryAllocator(ctx, a)
}
