package sim_test

import (
	"testing"
	"time"

	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/hal/serial"
	"github.com/tern-iot/tern/hal/sim"
)

// Per-operation costs of the simulated backends (the closing notes quote
// them; the host call path into them is in runtime/internal/wasmhost).

func BenchmarkGPIOOut(b *testing.B) {
	p, _ := sim.NewGPIO("GPIO17").Pin("GPIO17")
	var l gpio.Level
	for b.Loop() {
		l = !l
		p.Out(l)
	}
}

func BenchmarkGPIORead(b *testing.B) {
	p, _ := sim.NewGPIO("GPIO17").Pin("GPIO17")
	for b.Loop() {
		p.Read()
	}
}

func BenchmarkI2CTMP102Read(b *testing.B) {
	bus := sim.NewI2C("i2c1")
	bus.Attach("i2c1", 0x48, sim.NewTMP102(21))
	bb, _ := bus.Bus("i2c1")
	r := make([]byte, 2)
	for b.Loop() {
		bb.Tx(0x48, []byte{0}, r)
	}
}

func BenchmarkSerialEcho(b *testing.B) {
	s := sim.NewSerial()
	s.Connect("serial0", func(in []byte) []byte { return in })
	p, _ := s.Open("serial0", serial.Mode{Baud: 9600})
	defer p.Close()
	msg, buf := []byte("AT\r"), make([]byte, 8)
	for b.Loop() {
		p.Write(msg)
		p.Read(buf, time.Millisecond)
	}
}
