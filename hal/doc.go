// Package hal is the hardware abstraction layer of tern: the contracts that
// jobs, sensors and the testbench use to reach GPIO lines, I2C buses and
// serial ports, and the backends that implement them.
//
// This package holds no code; it documents the layout.
//
// Contracts hold interfaces and errors only, never an implementation, so a
// consumer depends on the contract and any backend can stand behind it:
//
//   - hal/gpio: GPIO lines (gpio.Pin, gpio.Lookup) and their sentinel errors.
//     hal/gpio/gpiotest is its conformance suite, which every backend's tests
//     run.
//   - hal/i2c and hal/serial arrive with the hardware issue, in the same shape.
//
// Backends live beside the contracts:
//
//   - hal/sim: simulated lines for tests, the demo and the testbench. A test
//     acts as the outside world through it (drive a line, probe a line, count
//     writes).
//   - Real backends (GPIO through periph.io's gpioioctl character device,
//     I2C through /dev/i2c-N, serial through go.bug.st/serial) arrive with
//     the hardware issue, and run the same conformance suites as hal/sim.
//
// Which lines a board has, and what they are called, is data in package
// boards, not code here: the agent builds a backend from a board's lines, for
// example sim.NewGPIO(board.Lines()...).
//
// Libraries under hal never log and never panic; they return errors of the
// form "pkg: what failed: cause", wrapping the contract's sentinel errors so
// callers can branch with errors.Is.
package hal
