package testbench

import (
	"context"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/runtime"
)

// A thermostat on the simulated board: the agent plans warm = heater on,
// wait, heater off, through the TMP102 on I2C and the relay on GPIO, and the
// room reaches the setpoint.
func TestThermostatScenario(t *testing.T) {
	start, ambient := 18.0, 15.0
	b, err := sim.NewBoard(sim.BoardSpec{
		I2C:   []sim.ChipSpec{{At: "i2c1:0x48", Chip: "tmp102", Celsius: &start}},
		Rooms: []sim.RoomSpec{{Heater: "GPIO17", Sensor: "i2c1:0x48", Heat: 5, Loss: 0.05, Ambient: &ambient}},
	}, []string{"GPIO17"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	lines, bus, r := b.GPIO, b.I2C, b.Rooms()[0]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.Run(ctx, 10*time.Millisecond)

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
			t.Fatalf("not converged: room at %.2f °C, status %+v", r.Temp(), a.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := r.Temp(); math.Abs(got-22) > 0.75 {
		t.Fatalf("converged with the room at %.2f °C, want 22 ± 0.5", got)
	}
	if lines.Writes("GPIO17") == 0 {
		t.Fatal("the heater was never switched")
	}
	if lvl, _ := lines.Level("GPIO17"); lvl != gpio.Low {
		t.Fatal("the heater was left on after warming")
	}
	if n := bus.Transactions("i2c1", 0x48); n < 2 {
		t.Fatalf("only %d I2C transactions: the room was not measured", n)
	}
}
