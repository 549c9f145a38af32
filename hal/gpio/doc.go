// Package gpio is the contract between GPIO backends and the code that uses
// GPIO lines (job host functions, sensors, the testbench). It holds
// interfaces and errors only, no implementation.
//
// A Lookup hands out Pins by the board's line names ("GPIO17"); a Pin is one
// line that can be made an input (with a pull) or an output (driving a
// level), and read.
//
// Backends: hal/sim (simulated); real backends arrive with the hardware
// issue. Every backend runs gpiotest.Conformance in its tests.
//
// Errors returned by backends wrap ErrUnknownLine and ErrClosed where those
// conditions apply, so callers can branch with errors.Is.
package gpio
