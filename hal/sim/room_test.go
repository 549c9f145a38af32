package sim_test

import (
	"math"
	"testing"
	"time"

	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/hal/sim"
)

// A heated room warms at Heat °C/s plus what it loses; an unheated one
// decays toward the outside exponentially, and the sensor reads it.
func TestRoom(t *testing.T) {
	lines := sim.NewGPIO("GPIO17")
	sensor := sim.NewTMP102(0)
	r := sim.NewRoom(lines, "GPIO17", sensor, 18, sim.RoomParams{Heat: 2, Loss: 0.1, Ambient: 15})
	r.Step(time.Second)
	if got, want := r.Temp(), 18-0.1*3; math.Abs(got-want) > 1e-9 {
		t.Errorf("heater off, 1 s: %v °C, want %v", got, want)
	}
	heater, err := lines.Pin("GPIO17")
	if err != nil {
		t.Fatal(err)
	}
	if err := heater.Out(gpio.High); err != nil {
		t.Fatal(err)
	}
	before := r.Temp()
	r.Step(500 * time.Millisecond)
	if got, want := r.Temp(), before+1-(before+1-15)*0.05; math.Abs(got-want) > 1e-9 {
		t.Errorf("heater on, 0.5 s: %v °C, want %v", got, want)
	}
	reg := make([]byte, 2)
	if err := sensor.Tx([]byte{0}, reg); err != nil {
		t.Fatal(err)
	}
	if got := float64(int16(uint16(reg[0])<<8|uint16(reg[1]))>>4) * 0.0625; math.Abs(got-r.Temp()) > 0.0625 {
		t.Errorf("sensor reads %v °C, room is %v", got, r.Temp())
	}
	// A step longer than the room's time constant settles, not overshoots.
	if err := heater.Out(gpio.Low); err != nil {
		t.Fatal(err)
	}
	r.Step(time.Minute)
	if got := r.Temp(); got != 15 {
		t.Errorf("after a long step: %v °C, want the ambient 15", got)
	}
}
