package i2cdev

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"periph.io/x/conn/v3/physic"
	"periph.io/x/host/v3/sysfs"

	"github.com/tern-iot/tern/hal/i2c"
)

// Buses opens /dev/i2c-N for a bus named "i2cN" the first time it is asked
// for.
type Buses struct {
	mu    sync.Mutex
	buses map[string]*bus
}

// Bus implements i2c.Lookup.
func (b *Buses) Bus(name string) (i2c.Bus, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if bb, ok := b.buses[name]; ok {
		return bb, nil
	}
	n, err := strconv.Atoi(strings.TrimPrefix(name, "i2c"))
	if !strings.HasPrefix(name, "i2c") || err != nil || n < 0 {
		return nil, fmt.Errorf("i2cdev: bus %q: %w (buses are named i2c0, i2c1, ...)", name, i2c.ErrUnknownBus)
	}
	dev := fmt.Sprintf("/dev/i2c-%d", n)
	if _, err := os.Stat(dev); err != nil {
		return nil, fmt.Errorf("i2cdev: bus %q: %s is missing: %w (is I2C enabled? see ternd doctor)", name, dev, i2c.ErrUnknownBus)
	}
	s, err := sysfs.NewI2C(n)
	if err != nil {
		return nil, fmt.Errorf("i2cdev: bus %q: %w", name, err)
	}
	if b.buses == nil {
		b.buses = map[string]*bus{}
	}
	bb := &bus{s: s}
	b.buses[name] = bb
	return bb, nil
}

type bus struct{ s *sysfs.I2C }

// SetSpeed implements i2c.SpeedSetter. Most boards fix the speed in the
// device tree (dtparam=i2c_arm_baudrate=...); the kernel may refuse.
func (b *bus) SetSpeed(hz int64) error { return b.s.SetSpeed(physic.Frequency(hz) * physic.Hertz) }

func (b *bus) Tx(addr uint16, w, r []byte) error {
	err := b.s.Tx(addr, w, r)
	if err == nil {
		return nil
	}
	msg := err.Error()
	if strings.Contains(msg, "remote I/O error") || strings.Contains(msg, "no such device or address") {
		return fmt.Errorf("i2cdev: address %#x: %w", addr, i2c.ErrNoDevice)
	}
	return fmt.Errorf("i2cdev: address %#x: %w: %v", addr, i2c.ErrBus, err)
}
