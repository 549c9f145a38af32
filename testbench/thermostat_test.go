package testbench

import (
	"context"
	"encoding/json"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/runtime"
)

// room is the physics: a heater on GPIO17 warms the room, which a TMP102 on
// i2c1 at 0x48 measures; without heat it cools toward the outside.
type room struct {
	mu     sync.Mutex
	temp   float64
	heated int // ticks with the heater on
}

func (r *room) run(ctx context.Context, lines *sim.GPIO, sensor *sim.TMP102) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		on, _ := lines.Level("GPIO17")
		r.mu.Lock()
		if on == gpio.High {
			r.temp += 0.05
			r.heated++
		} else {
			r.temp += (15 - r.temp) * 0.0005
		}
		sensor.Set(r.temp)
		r.mu.Unlock()
	}
}

func (r *room) now() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.temp
}

// A thermostat on the simulated board: the agent plans warm = heater on,
// wait, heater off, through the TMP102 on I2C and the relay on GPIO, and the
// room reaches the setpoint.
func TestThermostatScenario(t *testing.T) {
	lines := sim.NewGPIO("GPIO17")
	bus := sim.NewI2C("i2c1")
	sensor := sim.NewTMP102(18)
	bus.Attach("i2c1", 0x48, sensor)
	r := &room{temp: 18}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.run(ctx, lines, sensor)

	a := runAgent(t, runtime.Options{GPIO: lines, I2C: bus, RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond},
		"github.com/tern-iot/tern/plugins/thermostat", runtime.ModuleSpec{
			Name:   "thermostat",
			Grants: runtime.Grants{GPIO: []string{"GPIO17"}, I2C: []string{"i2c1:0x48"}},
			Config: json.RawMessage(`{"sensor":{"bus":"i2c1","address":72},"heater":"GPIO17"}`),
		})

	if err := a.SetTarget(1, json.RawMessage(`{"room":{"temp":22}}`)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !a.Status().Converged {
		if time.Now().After(deadline) {
			t.Fatalf("not converged: room at %.2f °C, status %+v", r.now(), a.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := r.now(); math.Abs(got-22) > 0.75 {
		t.Fatalf("converged with the room at %.2f °C, want 22 ± 0.5", got)
	}
	r.mu.Lock()
	heated := r.heated
	r.mu.Unlock()
	if heated == 0 {
		t.Fatal("the heater never ran")
	}
	if lvl, _ := lines.Level("GPIO17"); lvl != gpio.Low {
		t.Fatal("the heater was left on after warming")
	}
	if n := bus.Transactions("i2c1", 0x48); n < 2 {
		t.Fatalf("only %d I2C transactions: the room was not measured", n)
	}
}
