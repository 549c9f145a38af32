package sim

import (
	"fmt"
	"sync"

	"github.com/tern-iot/tern/hal/i2c"
)

// I2C is a set of simulated I2C buses with devices on them.
type I2C struct {
	mu    sync.Mutex
	buses map[string]map[uint16]Device
	txs   map[string]int // transactions per "bus:addr"
}

// Device is a simulated chip at one address: it answers transactions as
// the real one does.
type Device interface {
	Tx(w, r []byte) error
}

// NewI2C makes buses with the given names and no devices.
func NewI2C(names ...string) *I2C {
	s := &I2C{buses: map[string]map[uint16]Device{}, txs: map[string]int{}}
	for _, n := range names {
		s.buses[n] = map[uint16]Device{}
	}
	return s
}

// Attach puts a device on a bus at addr.
func (s *I2C) Attach(bus string, addr uint16, d Device) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buses[bus][addr] = d
}

// Transactions counts the transactions addressed to bus:addr.
func (s *I2C) Transactions(bus string, addr uint16) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.txs[fmt.Sprintf("%s:%#x", bus, addr)]
}

// Bus implements i2c.Lookup.
func (s *I2C) Bus(name string) (i2c.Bus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.buses[name]; !ok {
		return nil, fmt.Errorf("sim: bus %q: %w", name, i2c.ErrUnknownBus)
	}
	return simBus{s, name}, nil
}

type simBus struct {
	s    *I2C
	name string
}

// SetSpeed implements i2c.SpeedSetter: the standard (100 kHz), fast
// (400 kHz) and fast-plus (1 MHz) modes.
func (b simBus) SetSpeed(hz int64) error {
	if hz <= 0 || hz > 1_000_000 {
		return fmt.Errorf("sim: %s: %d Hz is outside 1 Hz to 1 MHz", b.name, hz)
	}
	return nil
}

func (b simBus) Tx(addr uint16, w, r []byte) error {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	b.s.txs[fmt.Sprintf("%s:%#x", b.name, addr)]++
	d, ok := b.s.buses[b.name][addr]
	if !ok {
		return fmt.Errorf("sim: %s address %#x: %w", b.name, addr, i2c.ErrNoDevice)
	}
	return d.Tx(w, r)
}

// Registers is a simple register-file chip (an EEPROM-like 256-byte map):
// a write sets the register pointer to its first byte and stores the rest
// from there; a read returns bytes from the pointer on.
type Registers struct {
	Mem [256]byte
	ptr byte
}

// Tx implements Device.
func (d *Registers) Tx(w, r []byte) error {
	if len(w) > 0 {
		d.ptr = w[0]
		for _, b := range w[1:] {
			d.Mem[d.ptr] = b
			d.ptr++
		}
	}
	for i := range r {
		r[i] = d.Mem[d.ptr]
		d.ptr++
	}
	return nil
}
