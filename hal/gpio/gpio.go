package gpio

import (
	"errors"
	"strconv"
	"time"
)

// Level is the logic level of a line.
type Level bool

// The two levels of a line.
const (
	Low  Level = false
	High Level = true
)

// String returns "Low" or "High".
func (l Level) String() string {
	if l {
		return "High"
	}
	return "Low"
}

// Pull is the bias applied to an input line.
type Pull int

// The pulls an input can have.
const (
	// PullNone leaves the input floating: what it reads depends on what is
	// wired to it.
	PullNone Pull = iota
	// PullDown biases the input to Low.
	PullDown
	// PullUp biases the input to High.
	PullUp
)

// String returns the constant's name, or "Pull(n)" for an unknown value.
func (p Pull) String() string {
	switch p {
	case PullNone:
		return "PullNone"
	case PullDown:
		return "PullDown"
	case PullUp:
		return "PullUp"
	}
	return "Pull(" + strconv.Itoa(int(p)) + ")"
}

// Pin is one GPIO line. A Pin is safe for concurrent use; two Pins for the
// same line, from the same Lookup, act on the same line.
type Pin interface {
	// Name returns the line's name, as given to Lookup.Pin.
	Name() string
	// Read returns the line's level; for an output, the level driven.
	Read() (Level, error)
	// Out makes the line an output driving l.
	Out(l Level) error
	// In makes the line an input with the pull p. A Pull other than
	// PullNone, PullDown and PullUp is an error.
	In(p Pull) error
	// WaitForEdge waits up to timeout for the input's level to change
	// (either way) and reports whether it did.
	WaitForEdge(timeout time.Duration) (bool, error)
}

// Lookup finds lines by name. Names are the board's (e.g. "GPIO17").
type Lookup interface {
	// Pin returns the named line. A name the backend does not have is an
	// error wrapping ErrUnknownLine.
	Pin(name string) (Pin, error)
}

// ErrUnknownLine means no line has the name asked for. Backends wrap it with
// the name: fmt.Errorf("sim: line %q: %w", name, gpio.ErrUnknownLine).
var ErrUnknownLine = errors.New("gpio: no such line")

// ErrClosed means the backend that owns the line has been closed; the Pin
// can no longer be used.
var ErrClosed = errors.New("gpio: closed")
