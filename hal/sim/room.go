package sim

import (
	"sync"
	"time"

	"github.com/tern-iot/tern/hal/gpio"
)

// RoomParams is the physics of a Room.
type RoomParams struct {
	// Heat is how many °C per second the heater adds. 0: 1.
	Heat float64
	// Loss is the fraction per second of its difference to Ambient the
	// room loses (0: perfectly insulated).
	Loss float64
	// Ambient is the temperature outside, °C.
	Ambient float64
}

// Room is a room for thermostat tests: a heater switched by a GPIO line
// warms it, it loses heat to the outside, and a TMP102 reads it:
//
//	dT/dt = heat·[heater on] − loss·(T − ambient)
//
// Step advances it; ternd's sim board and the testbench both drive their
// rooms with it. It is safe for concurrent use.
type Room struct {
	lines  *GPIO
	heater string
	sensor *TMP102
	p      RoomParams

	mu   sync.Mutex
	temp float64
}

// NewRoom returns a room at start °C whose heater is line heater of lines
// and whose temperature sensor reads.
func NewRoom(lines *GPIO, heater string, sensor *TMP102, start float64, p RoomParams) *Room {
	if p.Heat == 0 {
		p.Heat = 1
	}
	sensor.Set(start)
	return &Room{lines: lines, heater: heater, sensor: sensor, p: p, temp: start}
}

// Step advances the room by dt and sets its sensor. The loss term is
// clamped so that a long step settles at the ambient temperature rather
// than overshoot it.
func (r *Room) Step(dt time.Duration) {
	on, _ := r.lines.Level(r.heater)
	s := dt.Seconds()
	r.mu.Lock()
	defer r.mu.Unlock()
	if on == gpio.High {
		r.temp += r.p.Heat * s
	}
	r.temp += (r.p.Ambient - r.temp) * min(1, r.p.Loss*s)
	r.sensor.Set(r.temp)
}

// Temp returns the room's temperature, °C.
func (r *Room) Temp() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.temp
}
