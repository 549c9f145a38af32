//go:build !linux

package wasmhost

import "github.com/tetratelabs/wazero/experimental"

// heapMemory is a linear memory in Go's heap, as wazero's own is: off
// Linux the agent is a development build (tern plan), not a board's.
type heapMemory struct{ b []byte }

func newLinearMemory(_, _ uint64) experimental.LinearMemory { return &heapMemory{} }

func (m *heapMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(m.b)) {
		m.b = append(m.b, make([]byte, int(size)-len(m.b))...)
	}
	return m.b[:size]
}

func (m *heapMemory) Free() { m.b = nil }
