package sim_test

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/hal/i2c"
	"github.com/tern-iot/tern/hal/sim"
)

func readTemp(t *testing.T, b i2c.Bus) (float64, error) {
	t.Helper()
	r := make([]byte, 2)
	if err := b.Tx(0x48, []byte{0}, r); err != nil {
		return 0, err
	}
	return sim.TMP102Decode(uint16(r[0])<<8 | uint16(r[1])), nil
}

// A stuck TMP102 keeps its last reading and drops writes until its power
// line goes low and high again; NACK and bus errors wrap the contract's
// errors; a power cycle does not cure the bus.
func TestFaultyDevice(t *testing.T) {
	lines := sim.NewGPIO("GPIO22")
	lines.Drive("GPIO22", gpio.High) // the load switch's enable is pulled up
	bus := sim.NewI2C("i2c1")
	chip := sim.NewTMP102(20)
	f := sim.NewFaultyDevice(chip)
	if err := f.PowerFrom(lines, "GPIO22"); err != nil {
		t.Fatal(err)
	}
	bus.Attach("i2c1", 0x48, f)
	b, _ := bus.Bus("i2c1")
	if got, err := readTemp(t, b); err != nil || got != 20 {
		t.Fatalf("healthy: %v, %v", got, err)
	}

	f.SetFault(sim.I2CStuck)
	chip.Set(25)
	if got, _ := readTemp(t, b); got != 25 {
		t.Fatalf("first read after sticking: %v, want the chip's 25", got)
	}
	chip.Set(30)
	if got, _ := readTemp(t, b); got != 25 {
		t.Fatalf("stuck: %v, want the frozen 25", got)
	}
	b.Tx(0x48, []byte{2, 0x12, 0x00}, nil) // T_LOW write: dropped
	r := make([]byte, 2)
	if b.Tx(0x48, []byte{2}, r); r[0] == 0x12 {
		t.Fatal("a stuck chip took a register write")
	}

	p, _ := lines.Pin("GPIO22")
	p.Out(gpio.Low)
	if _, err := readTemp(t, b); !errors.Is(err, i2c.ErrNoDevice) {
		t.Fatalf("unpowered: %v, want ErrNoDevice", err)
	}
	p.Out(gpio.High)
	if got, err := readTemp(t, b); err != nil || got != 30 {
		t.Fatalf("after a power cycle: %v, %v; want 30", got, err)
	}
	if n := f.PowerCycles(); n != 1 {
		t.Fatalf("%d power cycles counted, want 1", n)
	}

	f.SetFault(sim.I2CNACK)
	if _, err := readTemp(t, b); !errors.Is(err, i2c.ErrNoDevice) {
		t.Fatalf("nack: %v", err)
	}
	f.PowerCycle()
	if _, err := readTemp(t, b); err != nil {
		t.Fatalf("nack after a power cycle: %v", err)
	}
	f.SetFault(sim.I2CBusError)
	f.PowerCycle()
	if _, err := readTemp(t, b); !errors.Is(err, i2c.ErrBus) {
		t.Fatalf("bus error after a power cycle: %v, want ErrBus", err)
	}
	f.SetFault(sim.I2CHealthy)

	f.SetNoise(sim.TMP102Noise(1, rand.New(rand.NewPCG(1, 2))))
	differ := false
	for range 20 {
		got, _ := readTemp(t, b)
		if got < 29 || got > 31 {
			t.Fatalf("noisy reading %v is more than 1 °C off 30", got)
		}
		differ = differ || got != 30
	}
	if !differ {
		t.Fatal("20 noisy readings were all exact")
	}
}

func TestFaultySerial(t *testing.T) {
	s := sim.NewFaultySerial(rand.New(rand.NewPCG(1, 2)))
	emit := s.Emit(func() []byte { return []byte("$GPRMC\r\n") })
	if got := string(emit()); got != "$GPRMC\r\n" {
		t.Fatalf("healthy: %q", got)
	}
	s.SetFault(sim.SerialSilent)
	if got := emit(); len(got) != 0 {
		t.Fatalf("silent: %q", got)
	}
	s.SetFault(sim.SerialGarbage)
	if got := string(emit()); got == "$GPRMC\r\n" || len(got) == 0 {
		t.Fatalf("garbage: %q", got)
	}
	echo := s.Responder(func(in []byte) []byte { return in })
	s.SetFault(sim.SerialHealthy)
	if got := string(echo([]byte("AT\r"))); got != "AT\r" {
		t.Fatalf("healthy responder: %q", got)
	}
}
