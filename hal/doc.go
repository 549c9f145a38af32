// Package hal is the hardware abstraction layer of tern: the contracts that
// jobs, sensors and the testbench use to reach GPIO lines, I2C buses and
// serial ports, and the backends that implement them.
//
// This package holds no code; it documents the layout.
//
// Contracts hold interfaces and errors only, never an implementation, so a
// consumer depends on the contract and any backend can stand behind it. Each
// has a conformance suite every backend's tests run:
//
//   - hal/gpio (gpiotest): lines in, out, with pulls, and edges waited for.
//   - hal/i2c (i2ctest): transactions to an address, bus speed, NACK.
//   - hal/serial (serialtest): ports opened with a mode, read with a
//     timeout, written, closed, one user at a time.
//
// Backends live beside the contracts:
//
//   - hal/sim: simulated lines (with wires between them and edges), I2C
//     buses with chips that behave as their datasheets say (TMP102, PCF8574,
//     24C02), serial ports in memory, and pseudo-terminals with a simulated
//     NMEA GPS or AT modem on the far end. A test acts as the outside world
//     through it.
//   - hal/gpiodev: GPIO through the Linux character device (periph.io's
//     gpioioctl).
//   - hal/i2cdev: I2C through /dev/i2c-N (periph.io).
//   - hal/serialdev: serial ports through go.bug.st/serial; its tests run
//     over real pseudo-terminals.
//
// Which lines, buses and ports a board has, and what they are called, is
// data in package boards, not code here.
//
// Libraries under hal never log and never panic; they return errors of the
// form "pkg: what failed: cause", wrapping the contract's sentinel errors so
// callers can branch with errors.Is.
package hal
