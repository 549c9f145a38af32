//go:build !wasip1

package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/sdk/sdktest"
)

// The thermostat's domain, as the planner and the agent call it, on a
// simulated room: a TMP102 on i2c1 and the heater on GPIO17.
func TestThermostatOnASimBoard(t *testing.T) {
	lines, bus := sim.NewGPIO("GPIO17"), sim.NewI2C("i2c1")
	sensor := sim.NewTMP102(18.2)
	bus.Attach("i2c1", 0x48, sensor)
	m, err := sdktest.New(sdktest.Board{GPIO: lines, I2C: bus}, map[string]any{
		"sensor": map[string]any{"bus": "i2c1", "address": 0x48}, "heater": "GPIO17"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	v, err := m.Sense("room")
	if err != nil {
		t.Fatal(err)
	}
	var room struct {
		Temp   *float64 `json:"temp"`
		Heater bool     `json:"heater"`
	}
	if err := json.Unmarshal(v, &room); err != nil || room.Temp == nil || *room.Temp != 18 || room.Heater {
		t.Fatalf("sensed %s (%v), want 18 °C (whole degrees), heater off", v, err)
	}
	if err := m.SetState(map[string]any{"room": json.RawMessage(v)}); err != nil {
		t.Fatal(err)
	}

	// Colder than the target: warm applies, cool does not.
	target := map[string]any{"temp": 21}
	warm, err := m.Try("warm", "/room", target)
	if err != nil || !warm.OK || len(warm.Tasks) != 3 || warm.Tasks[0].Job != "heater" || string(warm.Tasks[0].Target) != "true" || warm.Tasks[1].Job != "wait" {
		t.Fatalf("try warm: %+v, %v; want heater on, wait, heater off", warm, err)
	}
	if cool, err := m.Try("cool", "/room", target); err != nil || cool.OK {
		t.Fatalf("try cool in a cold room: %+v, %v; want not ok", cool, err)
	}

	// The steps, as the agent runs them.
	if err := m.Run("heater", "/room/heater", true); err != nil {
		t.Fatal(err)
	}
	if l, _ := lines.Level("GPIO17"); l != gpio.High {
		t.Fatal("the heater's line is low after switching it on")
	}
	go func() { time.Sleep(150 * time.Millisecond); sensor.Set(21.25) }() // the room warms
	if err := m.Run("wait", "/room", target); err != nil {
		t.Fatalf("waiting for a room that warms to 21.25 °C: %v", err)
	}
	if err := m.Run("heater", "/room/heater", false); err != nil {
		t.Fatal(err)
	}
	v, err = m.Sense("room")
	if err != nil || json.Unmarshal(v, &room) != nil || *room.Temp != 21 || room.Heater {
		t.Fatalf("sensed %s, %v after warming; want 21 °C, heater off", v, err)
	}
}
