package sim

import (
	"fmt"
	"math"
	"sync"
)

// Simulated I2C chips, each reproducing its datasheet at register level.
// Attach them to an I2C bus with (*I2C).Attach.

// TMP102 is Texas Instruments' TMP102 temperature sensor (SBOS397), in its
// default 12-bit mode: a pointer register selects temperature (0, read
// only), configuration (1), T_LOW (2) or T_HIGH (3); each is 16 bits, most
// significant byte first; temperatures are two's complement, 0.0625 °C per
// bit, left-justified. Its usual address is 0x48 (ADD0 to ground).
type TMP102 struct {
	mu   sync.Mutex
	temp float64 // °C, what the room is at
	ptr  byte
	regs [4]uint16
}

// NewTMP102 is a TMP102 at power-up (configuration 0x60A0, T_LOW 75 °C,
// T_HIGH 80 °C) reading celsius.
func NewTMP102(celsius float64) *TMP102 {
	return &TMP102{temp: celsius, regs: [4]uint16{0, 0x60A0, 0x4B00, 0x5000}}
}

// Set sets the temperature the chip measures.
func (d *TMP102) Set(celsius float64) {
	d.mu.Lock()
	d.temp = celsius
	d.mu.Unlock()
}

// TMP102Encode is the temperature register's value for celsius: 12 bits,
// 0.0625 °C per bit, clamped to the sensor's range, left-justified.
func TMP102Encode(celsius float64) uint16 {
	n := int(math.Round(celsius / 0.0625))
	n = max(-2048, min(2047, n))
	return uint16(n&0xFFF) << 4
}

// TMP102Decode is the temperature a register value reads.
func TMP102Decode(reg uint16) float64 { return float64(int16(reg)>>4) * 0.0625 }

// Tx implements Device: the first byte written is the pointer; two more
// write the register (not the temperature, which is read only); a read
// returns the pointed register, most significant byte first.
func (d *TMP102) Tx(w, r []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(w) > 0 {
		if w[0] > 3 {
			return fmt.Errorf("sim: TMP102: pointer %d does not exist (0-3)", w[0])
		}
		d.ptr = w[0]
		if len(w) >= 3 && d.ptr != 0 {
			d.regs[d.ptr] = uint16(w[1])<<8 | uint16(w[2])
		}
	}
	reg := d.regs[d.ptr]
	if d.ptr == 0 {
		reg = TMP102Encode(d.temp)
	}
	for i := range r {
		r[i] = byte(reg >> (8 * (1 - i%2)))
	}
	return nil
}

// PCF8574 is NXP's PCF8574 8-bit I/O expander: one byte written sets the
// port; a pin written 1 is a weak pull-up that reads the outside world
// (high unless something pulls it low), a pin written 0 drives low and reads
// 0. At power-up every pin is 1. Addresses 0x20-0x27.
type PCF8574 struct {
	mu     sync.Mutex
	port   byte // last written
	pulled byte // pins held low from outside
}

// NewPCF8574 is an expander at power-up.
func NewPCF8574() *PCF8574 { return &PCF8574{port: 0xFF} }

// PullLow holds pin (0-7) low from outside, or releases it.
func (d *PCF8574) PullLow(pin int, low bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if low {
		d.pulled |= 1 << pin
	} else {
		d.pulled &^= 1 << pin
	}
}

// Output is the port as last written.
func (d *PCF8574) Output() byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.port
}

// Tx implements Device: each byte written sets the port; each byte read
// is the pins' levels.
func (d *PCF8574) Tx(w, r []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, b := range w {
		d.port = b
	}
	for i := range r {
		r[i] = d.port &^ d.pulled
	}
	return nil
}

// EEPROM24C02 is a 24C02 serial EEPROM (Microchip 24AA02/24LC02B): 256
// bytes in 8-byte pages. A write is a word address then data; data past the
// end of the page wraps to the page's start (the datasheet's page write).
// A read returns bytes from the current address on, wrapping from 0xFF to
// 0x00 (sequential read). It powers up erased (0xFF). Addresses 0x50-0x57.
type EEPROM24C02 struct {
	mu   sync.Mutex
	Mem  [256]byte
	addr byte
}

// NewEEPROM24C02 is an erased EEPROM.
func NewEEPROM24C02() *EEPROM24C02 {
	d := &EEPROM24C02{}
	for i := range d.Mem {
		d.Mem[i] = 0xFF
	}
	return d
}

// Tx implements Device.
func (d *EEPROM24C02) Tx(w, r []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(w) > 0 {
		d.addr = w[0]
		page := d.addr &^ 7
		for i, b := range w[1:] {
			d.Mem[page|(d.addr+byte(i))&7] = b
		}
		if len(w) > 1 {
			d.addr = page | (d.addr+byte(len(w)-1))&7
		}
	}
	for i := range r {
		r[i] = d.Mem[d.addr]
		d.addr++
	}
	return nil
}
