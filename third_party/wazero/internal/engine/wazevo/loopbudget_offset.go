//go:build amd64 || arm64

package wazevo

import (
	"unsafe"

	"github.com/tetratelabs/wazero/internal/engine/wazevo/wazevoapi"
)

// The compiled code finds loopBudget at this offset (tern patch). The
// compiler runs only on 64-bit machines, where the offsets hold.
var _ = [1]struct{}{}[unsafe.Offsetof(executionContext{}.loopBudget)-uintptr(wazevoapi.ExecutionContextOffsetLoopBudget)]
