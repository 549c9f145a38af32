package wasmhost

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Grants are the resources a device gives a module, named as the board
// names them.
type Grants struct {
	// GPIO lines, e.g. "GPIO17".
	GPIO []string `json:"gpio,omitempty" yaml:"gpio,omitempty"`
	// I2C devices as "bus:address", e.g. "i2c1:0x48".
	I2C []string `json:"i2c,omitempty" yaml:"i2c,omitempty"`
	// Serial ports, as "ttyS0" (any baud rate) or "ttyS0@9600" (that rate
	// only).
	Serial []string `json:"serial,omitempty" yaml:"serial,omitempty"`
}

func (g Grants) allowsGPIO(line string) bool { return slices.Contains(g.GPIO, line) }

// check refuses grants that cannot mean anything.
func (g Grants) check() error {
	for _, d := range g.I2C {
		if _, _, err := parseI2CGrant(d); err != nil {
			return err
		}
	}
	for _, p := range g.Serial {
		name, baud, hasBaud := strings.Cut(p, "@")
		if n, err := strconv.Atoi(baud); name == "" || hasBaud && (err != nil || n <= 0) {
			return fmt.Errorf("wasmhost: serial grant %q: want a port name, or name@baud, e.g. ttyS0@9600", p)
		}
	}
	return nil
}

func (g Grants) allowsSerial(port string, baud int) bool {
	for _, p := range g.Serial {
		name, rate, hasBaud := strings.Cut(p, "@")
		if name == port && (!hasBaud || rate == strconv.Itoa(baud)) {
			return true
		}
	}
	return false
}

func (g Grants) allowsI2C(bus string, addr uint16) bool {
	for _, d := range g.I2C {
		if b, a, err := parseI2CGrant(d); err == nil && b == bus && a == addr {
			return true
		}
	}
	return false
}

// parseI2CGrant reads "bus:address" (address in hex with 0x, or decimal).
func parseI2CGrant(s string) (string, uint16, error) {
	bus, addr, ok := strings.Cut(s, ":")
	n, err := strconv.ParseUint(addr, 0, 16)
	if !ok || bus == "" || err != nil || n > 0x3ff {
		return "", 0, fmt.Errorf("wasmhost: I2C grant %q: want bus:address, e.g. i2c1:0x48", s)
	}
	return bus, uint16(n), nil
}
