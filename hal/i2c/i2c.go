package i2c

import "errors"

// Bus is one I2C bus. A Bus is safe for concurrent use; transactions are
// serialised.
type Bus interface {
	// Tx writes w to the device at addr, then reads len(r) bytes from it
	// into r, with a repeated start between. Either may be empty.
	Tx(addr uint16, w, r []byte) error
}

// SpeedSetter is a Bus whose clock can be set, in hertz (100 kHz standard
// mode, 400 kHz fast mode). Backends that can, implement it.
type SpeedSetter interface {
	SetSpeed(hz int64) error
}

// Lookup finds a board's buses by name.
type Lookup interface {
	// Bus returns the named bus; an unknown name is an error wrapping
	// ErrUnknownBus.
	Bus(name string) (Bus, error)
}

// Errors backends wrap.
var (
	// ErrUnknownBus: the board has no bus of that name.
	ErrUnknownBus = errors.New("i2c: no such bus")
	// ErrNoDevice: no device acknowledged the address (NACK).
	ErrNoDevice = errors.New("i2c: no device answers at that address")
	// ErrBus: the transfer failed on the wire.
	ErrBus = errors.New("i2c: bus error")
)
