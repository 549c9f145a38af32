// Package native connects the SDK, built for the machine it runs on
// rather than for wasm, to a stand-in for ternd: package sdktest. Module
// authors do not use it.
package native

import (
	"sync/atomic"
	"time"
)

// Host is what a module's hardware and state calls reach outside wasm. A
// nil field answers as ternd does for a board without the resource.
type Host struct {
	GPIOWrite    func(line string, high bool) error
	GPIORead     func(line string) (bool, error)
	GPIOIn       func(line string, pull uint32) error
	GPIOWaitEdge func(line string, timeout time.Duration) (bool, error)
	I2CTx        func(bus string, addr uint16, w, r []byte) error
	SerialOpen   func(name string, baud int) (int32, error)
	SerialWrite  func(handle int32, b []byte) (int, error)
	SerialRead   func(handle int32, b []byte, timeout time.Duration) (int, error)
	SerialClose  func(handle int32) error
	// StateRead returns the state at path in the call format
	// (abi.AppendState).
	StateRead func(path string) ([]byte, error)
	Log       func(level int32, msg string)
}

var current atomic.Pointer[Host]

// Use makes h the host of the module in this process; nil: none.
func Use(h *Host) { current.Store(h) }

// Current is the host Use set, or nil.
func Current() *Host { return current.Load() }

// Dispatch runs one call of the module as ternd's tern_try, tern_run and
// tern_sense exports do: export is "try", "run" or "sense", in the call
// (abi.EncodeCall), and the result is appended to out. Package sdk sets
// it. Calls must not overlap.
var Dispatch func(export string, in, out []byte) []byte
