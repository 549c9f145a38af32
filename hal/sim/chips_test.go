package sim_test

import (
	"errors"
	"testing"

	"github.com/tern-iot/tern/hal/i2c"
	"github.com/tern-iot/tern/hal/i2c/i2ctest"
	"github.com/tern-iot/tern/hal/sim"
)

// TMP102 (TI SBOS397), table "12-bit temperature data format": the
// datasheet's worked examples, temperature to register and back.
func TestTMP102DatasheetTable(t *testing.T) {
	for _, tc := range []struct {
		celsius float64
		digital uint16 // the 12-bit value as the table gives it
	}{
		{128, 0x7FF}, // out of range: clamps to 127.9375
		{127.9375, 0x7FF},
		{100, 0x640},
		{80, 0x500},
		{75, 0x4B0},
		{50, 0x320},
		{25, 0x190},
		{0.25, 0x004},
		{0, 0x000},
		{-0.25, 0xFFC},
		{-25, 0xE70},
		{-55, 0xC90},
	} {
		if got := sim.TMP102Encode(tc.celsius); got != tc.digital<<4 {
			t.Errorf("%v °C: register %#04x, want %#04x", tc.celsius, got, tc.digital<<4)
		}
		if tc.celsius <= 127.9375 {
			if got := sim.TMP102Decode(tc.digital << 4); got != tc.celsius {
				t.Errorf("register %#03x reads %v °C, want %v", tc.digital, got, tc.celsius)
			}
		}
	}
}

func TestTMP102Registers(t *testing.T) {
	bus := sim.NewI2C("i2c1")
	chip := sim.NewTMP102(25)
	bus.Attach("i2c1", 0x48, chip)
	b, _ := bus.Bus("i2c1")
	r := make([]byte, 2)
	// Pointer 0, then read: 25 °C is 0x19 0x00.
	if err := b.Tx(0x48, []byte{0}, r); err != nil || r[0] != 0x19 || r[1] != 0x00 {
		t.Fatalf("temperature: % x, %v", r, err)
	}
	chip.Set(-25)
	if err := b.Tx(0x48, nil, r); err != nil || r[0] != 0xE7 || r[1] != 0x00 {
		t.Fatalf("temperature after change, pointer kept: % x, %v", r, err)
	}
	// Power-up configuration 0x60A0, T_LOW 75 °C, T_HIGH 80 °C.
	for ptr, want := range map[byte][2]byte{1: {0x60, 0xA0}, 2: {0x4B, 0x00}, 3: {0x50, 0x00}} {
		if err := b.Tx(0x48, []byte{ptr}, r); err != nil || r[0] != want[0] || r[1] != want[1] {
			t.Errorf("register %d: % x, want % x (%v)", ptr, r, want, err)
		}
	}
	// T_HIGH is writable, most significant byte first; temperature is not.
	b.Tx(0x48, []byte{3, 0x5A, 0x00}, nil)
	if b.Tx(0x48, []byte{3}, r); r[0] != 0x5A {
		t.Fatalf("T_HIGH after write: % x", r)
	}
	b.Tx(0x48, []byte{0, 0x00, 0x00}, nil)
	if b.Tx(0x48, []byte{0}, r); r[0] != 0xE7 {
		t.Fatalf("temperature register was written: % x", r)
	}
	if err := b.Tx(0x48, []byte{4}, r); err == nil {
		t.Fatal("pointer 4 accepted")
	}
}

// PCF8574 (NXP): quasi-bidirectional port. At power-up all pins are high;
// a pin written 0 reads 0; a pin written 1 reads what the outside does.
func TestPCF8574(t *testing.T) {
	bus := sim.NewI2C("i2c1")
	chip := sim.NewPCF8574()
	bus.Attach("i2c1", 0x20, chip)
	b, _ := bus.Bus("i2c1")
	r := make([]byte, 1)
	if b.Tx(0x20, nil, r); r[0] != 0xFF {
		t.Fatalf("power-up reads %#x, want 0xff", r[0])
	}
	chip.PullLow(3, true) // a button on P3 pressed
	if b.Tx(0x20, nil, r); r[0] != 0xF7 {
		t.Fatalf("with P3 pulled low reads %#x, want 0xf7", r[0])
	}
	b.Tx(0x20, []byte{0x0F}, nil) // P4-P7 driven low
	if b.Tx(0x20, nil, r); r[0] != 0x07 || chip.Output() != 0x0F {
		t.Fatalf("after writing 0x0f reads %#x (output %#x), want 0x07", r[0], chip.Output())
	}
}

// 24C02 (Microchip 24AA02/24LC02B): byte write, page write wrapping inside
// its 8-byte page, random read, and sequential read wrapping at the end.
func TestEEPROM24C02(t *testing.T) {
	bus := sim.NewI2C("i2c1")
	chip := sim.NewEEPROM24C02()
	bus.Attach("i2c1", 0x50, chip)
	b, _ := bus.Bus("i2c1")
	r := make([]byte, 1)
	if b.Tx(0x50, []byte{0x10}, r); r[0] != 0xFF {
		t.Fatalf("erased byte reads %#x", r[0])
	}
	b.Tx(0x50, []byte{0x10, 0xAB}, nil) // byte write
	if b.Tx(0x50, []byte{0x10}, r); r[0] != 0xAB {
		t.Fatalf("byte write: %#x", r[0])
	}
	// Page write of 4 bytes from 0x06: 0x06, 0x07, then wraps to 0x00, 0x01.
	b.Tx(0x50, []byte{0x06, 1, 2, 3, 4}, nil)
	if chip.Mem[0x06] != 1 || chip.Mem[0x07] != 2 || chip.Mem[0x00] != 3 || chip.Mem[0x01] != 4 || chip.Mem[0x08] != 0xFF {
		t.Fatalf("page write: % x", chip.Mem[:9])
	}
	// Sequential read crosses pages and wraps from 0xFF to 0x00.
	chip.Mem[0xFF] = 0x42
	seq := make([]byte, 3)
	b.Tx(0x50, []byte{0xFF}, seq)
	if seq[0] != 0x42 || seq[1] != 3 || seq[2] != 4 {
		t.Fatalf("sequential read from 0xff: % x", seq)
	}
	// Current-address read continues where the last one stopped.
	if b.Tx(0x50, nil, r); r[0] != chip.Mem[0x02] {
		t.Fatalf("current address read: %#x", r[0])
	}
}

// A missing address is a NACK; an unknown bus is named.
func TestI2CErrors(t *testing.T) {
	bus := sim.NewI2C("i2c1")
	b, _ := bus.Bus("i2c1")
	if err := b.Tx(0x77, []byte{0}, nil); !errors.Is(err, i2c.ErrNoDevice) {
		t.Fatalf("missing device: %v", err)
	}
	if _, err := bus.Bus("i2c9"); !errors.Is(err, i2c.ErrUnknownBus) {
		t.Fatalf("unknown bus: %v", err)
	}
}

func TestI2CConformance(t *testing.T) {
	bus := sim.NewI2C("i2c1")
	bus.Attach("i2c1", 0x50, sim.NewEEPROM24C02())
	i2ctest.Conformance(t, bus, "i2c1", 0x50, 0x51)
}

// NMEA 0183 checksums, as the standard's worked example gives them.
func TestNMEAChecksum(t *testing.T) {
	got := sim.NMEASentence("GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,")
	if want := "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n"; got != want {
		t.Fatalf("%q, want %q", got, want)
	}
}
