package i2ctest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/tern-iot/tern/hal/i2c"
)

// Conformance checks l's bus named bus: an EEPROM-like device at eeprom,
// nothing at empty.
func Conformance(t *testing.T, l i2c.Lookup, bus string, eeprom, empty uint16) {
	t.Helper()
	b, err := l.Bus(bus)
	if err != nil {
		t.Fatalf("Bus(%q): %v", bus, err)
	}
	t.Run("unknown bus", func(t *testing.T) {
		if _, err := l.Bus(bus + "-no-such"); !errors.Is(err, i2c.ErrUnknownBus) {
			t.Fatalf("Bus of an unknown name: %v, want ErrUnknownBus", err)
		}
	})
	t.Run("write then read back", func(t *testing.T) {
		if err := b.Tx(eeprom, []byte{0x20, 0xDE, 0xAD}, nil); err != nil {
			t.Fatalf("write: %v", err)
		}
		r := make([]byte, 2)
		if err := b.Tx(eeprom, []byte{0x20}, r); err != nil || r[0] != 0xDE || r[1] != 0xAD {
			t.Fatalf("read back: % x, %v", r, err)
		}
	})
	t.Run("speed", func(t *testing.T) {
		s, ok := b.(i2c.SpeedSetter)
		if !ok {
			t.Skip("the bus does not set its speed (i2c.SpeedSetter)")
		}
		if err := s.SetSpeed(400_000); err != nil {
			t.Fatalf("SetSpeed(400 kHz): %v", err)
		}
		if err := s.SetSpeed(-1); err == nil {
			t.Fatal("SetSpeed(-1) accepted")
		}
	})
	t.Run("empty transaction", func(t *testing.T) {
		if err := b.Tx(eeprom, nil, nil); err != nil {
			t.Fatalf("a transaction with nothing to write or read: %v", err)
		}
	})
	t.Run("no device is a NACK", func(t *testing.T) {
		if err := b.Tx(empty, []byte{0}, make([]byte, 1)); !errors.Is(err, i2c.ErrNoDevice) {
			t.Fatalf("transaction to %#x: %v, want ErrNoDevice", empty, err)
		}
	})
	t.Run("concurrent transactions are serialised", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				reg := byte(0x40 + 8*g) // each goroutine its own page
				for i := range 50 {
					v := byte(i)
					if err := b.Tx(eeprom, []byte{reg, v}, nil); err != nil {
						errs <- err
						return
					}
					r := make([]byte, 1)
					if err := b.Tx(eeprom, []byte{reg}, r); err != nil || r[0] != v {
						errs <- fmt.Errorf("goroutine %d read %#x, wrote %#x (%v)", g, r[0], v, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}
