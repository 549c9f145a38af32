package sim

import (
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/hal/i2c"
)

// Hardware faults, as the field produces them, for the testbench and for
// tests of how modules and the agent cope. Each wrapper passes everything
// through until a fault is switched on, and can be switched back.

// I2CFault is what a [FaultyDevice] does wrong.
type I2CFault int

// The I2C faults.
const (
	// I2CHealthy passes every transaction to the chip.
	I2CHealthy I2CFault = iota
	// I2CStuck is a chip whose state machine has latched: every read
	// returns what the same register returned the last time (the first
	// read of a register after the fault began is passed through and then
	// frozen), and writes are acknowledged and dropped. A power cycle
	// clears it. A stuck temperature sensor keeps reporting the same
	// temperature whatever the room does.
	I2CStuck
	// I2CNACK is a chip that no longer acknowledges its address, as one
	// that browned out or lost its supply: every transaction fails with
	// i2c.ErrNoDevice. A power cycle clears it.
	I2CNACK
	// I2CBusError is a disturbed bus (a long cable, a missing pull-up):
	// every transaction fails with i2c.ErrBus. A power cycle of the chip
	// does not help.
	I2CBusError
)

// String names the fault as scenario files do.
func (f I2CFault) String() string {
	switch f {
	case I2CHealthy:
		return "healthy"
	case I2CStuck:
		return "stuck"
	case I2CNACK:
		return "nack"
	case I2CBusError:
		return "bus error"
	}
	return fmt.Sprintf("I2CFault(%d)", int(f))
}

// FaultyDevice wraps an I2C chip with switchable faults, noise and a
// power line. It implements Device; attach it in the chip's place.
type FaultyDevice struct {
	dev Device

	mu     sync.Mutex
	fault  I2CFault
	off    bool            // the power line is low
	ptr    byte            // the register pointer, as the last write set it
	frozen map[byte][]byte // I2CStuck: what each register read returned
	noise  func(ptr byte, r []byte)
	cycles int
}

// NewFaultyDevice wraps dev, healthy.
func NewFaultyDevice(dev Device) *FaultyDevice { return &FaultyDevice{dev: dev} }

// SetFault switches a fault on, or I2CHealthy switches it off.
func (f *FaultyDevice) SetFault(fault I2CFault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fault = fault
	f.frozen = nil
}

// Fault is the fault in force.
func (f *FaultyDevice) Fault() I2CFault {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fault
}

// SetNoise makes every read pass through fn, which may change what the
// chip answered for register ptr; nil removes the noise. See TMP102Noise.
func (f *FaultyDevice) SetNoise(fn func(ptr byte, r []byte)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.noise = fn
}

// PowerCycle is the chip's supply switched off and on again: it clears
// I2CStuck and I2CNACK (not I2CBusError, which is the bus's).
func (f *FaultyDevice) PowerCycle() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.powerUp()
}

func (f *FaultyDevice) powerUp() {
	f.cycles++
	if f.fault == I2CStuck || f.fault == I2CNACK {
		f.fault, f.frozen = I2CHealthy, nil
	}
}

// PowerCycles counts the power cycles the chip went through.
func (f *FaultyDevice) PowerCycles() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cycles
}

// PowerFrom supplies the chip from a GPIO line, as a sensor powered from a
// pin (or through a load switch on one) is: while the line is low the chip
// does not answer (i2c.ErrNoDevice); when it goes high again the chip
// powers up afresh (PowerCycle). The chip counts as powered until the line
// first goes low, so a line nobody drives does not switch it off; drive the
// line high from outside (GPIO.Drive, a pull-up on the switch's enable) so
// that an agent driving it low is a change.
func (f *FaultyDevice) PowerFrom(g *GPIO, line string) error {
	return g.Watch(line, func(l gpio.Level) {
		f.mu.Lock()
		defer f.mu.Unlock()
		switch {
		case l == gpio.Low:
			f.off = true
		case f.off:
			f.off = false
			f.powerUp()
		}
	})
}

// Tx implements Device.
func (f *FaultyDevice) Tx(w, r []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(w) > 0 {
		f.ptr = w[0]
	}
	switch {
	case f.off:
		return fmt.Errorf("sim: chip unpowered: %w", i2c.ErrNoDevice)
	case f.fault == I2CNACK:
		return fmt.Errorf("sim: chip does not acknowledge (injected fault): %w", i2c.ErrNoDevice)
	case f.fault == I2CBusError:
		return fmt.Errorf("sim: arbitration lost (injected fault): %w", i2c.ErrBus)
	case f.fault == I2CStuck:
		if len(r) == 0 {
			return nil // a write: acknowledged, dropped
		}
		if f.frozen == nil {
			f.frozen = map[byte][]byte{}
		}
		got, ok := f.frozen[f.ptr]
		if !ok || len(got) != len(r) {
			if err := f.dev.Tx(w[:min(len(w), 1)], r); err != nil {
				return err
			}
			got = append([]byte(nil), r...)
			f.frozen[f.ptr] = got
		}
		copy(r, got)
		return nil
	}
	if err := f.dev.Tx(w, r); err != nil {
		return err
	}
	if f.noise != nil && len(r) > 0 {
		f.noise(f.ptr, r)
	}
	return nil
}

// TMP102Noise is noise for a TMP102's temperature register (pointer 0):
// each reading is off by up to ±amplitude °C, uniformly, drawn from rng.
func TMP102Noise(amplitude float64, rng *rand.Rand) func(ptr byte, r []byte) {
	var mu sync.Mutex
	return func(ptr byte, r []byte) {
		if ptr != 0 || len(r) < 2 {
			return
		}
		mu.Lock()
		d := (rng.Float64()*2 - 1) * amplitude
		mu.Unlock()
		t := TMP102Decode(uint16(r[0])<<8|uint16(r[1])) + d
		reg := TMP102Encode(t)
		r[0], r[1] = byte(reg>>8), byte(reg)
	}
}

// SerialFault is what a [FaultySerial] device does wrong.
type SerialFault int

// The serial faults.
const (
	// SerialHealthy passes everything through.
	SerialHealthy SerialFault = iota
	// SerialSilent is a device that says nothing (unplugged, or hung).
	SerialSilent
	// SerialGarbage is a device (or a line: wrong baud rate, noise) that
	// sends random bytes instead of what it should.
	SerialGarbage
)

// String names the fault as scenario files do.
func (f SerialFault) String() string {
	switch f {
	case SerialHealthy:
		return "healthy"
	case SerialSilent:
		return "silent"
	case SerialGarbage:
		return "garbage"
	}
	return fmt.Sprintf("SerialFault(%d)", int(f))
}

// FaultySerial puts switchable faults between a serial device and its
// port: wrap what a talking device emits (Emit, for PTY.Emit) or how it
// answers (Responder, for PTY.Serve and Serial.Connect).
type FaultySerial struct {
	mu    sync.Mutex
	fault SerialFault
	rng   *rand.Rand
}

// NewFaultySerial is healthy; garbage is drawn from rng.
func NewFaultySerial(rng *rand.Rand) *FaultySerial { return &FaultySerial{rng: rng} }

// SetFault switches a fault on, or SerialHealthy switches it off.
func (s *FaultySerial) SetFault(f SerialFault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

func (s *FaultySerial) filter(out []byte) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.fault {
	case SerialSilent:
		return nil
	case SerialGarbage:
		g := make([]byte, max(len(out), 64))
		for i := range g {
			g[i] = byte(s.rng.IntN(256))
		}
		return g
	}
	return out
}

// Emit wraps a device that talks unasked.
func (s *FaultySerial) Emit(next func() []byte) func() []byte {
	return func() []byte { return s.filter(next()) }
}

// Responder wraps a device that answers what is written to it.
func (s *FaultySerial) Responder(dev Responder) Responder {
	return func(in []byte) []byte { return s.filter(dev(in)) }
}
