package sdk

import (
	"fmt"
	"time"
)

// GPIOWrite drives a GPIO line high or low. The line is named as the board
// names it ("GPIO17") and must be granted to the module; otherwise the error
// is ErrnoNotGranted. While planning every hardware call fails with
// ErrnoPlanning.
func GPIOWrite(line string, high bool) error {
	if err := gpioWrite(line, high); err != nil {
		return fmt.Errorf("gpio %s: %w", line, err)
	}
	return nil
}

// GPIORead reads a GPIO line's level (for an output, the level it drives).
func GPIORead(line string) (bool, error) {
	v, err := gpioRead(line)
	if err != nil {
		return false, fmt.Errorf("gpio %s: %w", line, err)
	}
	return v, nil
}

// Pulls for GPIOIn.
const (
	PullNone uint32 = 0
	PullDown uint32 = 1
	PullUp   uint32 = 2
)

// GPIOIn makes a line an input with a pull (PullNone, PullDown, PullUp).
func GPIOIn(line string, pull uint32) error {
	if err := gpioIn(line, pull); err != nil {
		return fmt.Errorf("gpio %s: %w", line, err)
	}
	return nil
}

// GPIOWaitEdge waits up to timeout (never past the call's deadline) for
// an input's level to change, and reports whether it did.
func GPIOWaitEdge(line string, timeout time.Duration) (bool, error) {
	got, err := gpioWaitEdge(line, timeout)
	if err != nil {
		return false, fmt.Errorf("gpio %s: %w", line, err)
	}
	return got, nil
}

// I2CTx writes w to the device at addr on the named bus ("i2c1"), then
// reads len(r) bytes into r. The bus and address must be granted to the
// module (ErrnoNotGranted otherwise); a device that does not answer is
// ErrnoNoDevice.
func I2CTx(bus string, addr uint16, w, r []byte) error {
	if err := i2cTx(bus, addr, w, r); err != nil {
		return fmt.Errorf("i2c %s %#x: %w", bus, addr, err)
	}
	return nil
}

// SerialPort is a serial port open for the rest of the current call; the
// host closes it when the call returns, if the module did not.
type SerialPort struct{ handle int32 }

// SerialOpen opens a granted serial port ("ttyS0") at baud.
func SerialOpen(name string, baud int) (*SerialPort, error) {
	h, err := serialOpen(name, baud)
	if err != nil {
		return nil, fmt.Errorf("serial %s: %w", name, err)
	}
	return &SerialPort{h}, nil
}

// Write writes b.
func (p *SerialPort) Write(b []byte) (int, error) { return serialWrite(p.handle, b) }

// Read reads what has arrived into b, waiting at most timeout for the
// first byte (never past the call's deadline); nothing in time is 0, nil.
func (p *SerialPort) Read(b []byte, timeout time.Duration) (int, error) {
	return serialRead(p.handle, b, timeout)
}

// Close closes the port.
func (p *SerialPort) Close() error { return serialClose(p.handle) }

// Log levels for Logf, matching log/slog's.
const (
	LevelDebug int32 = -4
	LevelInfo  int32 = 0
	LevelWarn  int32 = 4
	LevelError int32 = 8
)

// Logf writes to the agent's log, attributed to the module.
func Logf(level int32, format string, args ...any) { logf(level, fmt.Sprintf(format, args...)) }
