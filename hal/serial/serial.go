package serial

import (
	"errors"
	"time"
)

// Mode is how a port is opened.
type Mode struct {
	Baud int
}

// Port is an open serial port. It is not safe for concurrent use.
type Port interface {
	// Read reads what has arrived, waiting at most timeout for the first
	// byte; no byte in time is (0, nil).
	Read(p []byte, timeout time.Duration) (int, error)
	Write(p []byte) (int, error)
	Close() error
}

// Opener opens a board's ports by name.
type Opener interface {
	// Open opens the named port; an unknown name is an error wrapping
	// ErrUnknownPort. A port opened reads only what arrives after Open:
	// bytes that arrived while it was closed are discarded, as a UART that
	// was off would never have received them. (A pseudo-terminal, or a
	// driver that keeps receiving, would otherwise hand a module that opens
	// the port once a second ever older data.)
	Open(name string, mode Mode) (Port, error)
}

// Errors backends wrap.
var (
	ErrUnknownPort = errors.New("serial: no such port")
	ErrBusy        = errors.New("serial: port already open")
)
