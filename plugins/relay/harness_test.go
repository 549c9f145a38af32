//go:build !wasip1

package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/sdk"
	"github.com/tern-iot/tern/sdk/sdktest"
)

// The module as ternd runs it, on a simulated board: the planner's
// question, the task, the sensor.
func TestRelayOnASimBoard(t *testing.T) {
	for _, activeLow := range []bool{false, true} {
		lines := sim.NewGPIO("GPIO17", "GPIO27")
		m, err := sdktest.New(sdktest.Board{GPIO: lines}, map[string]any{
			"lines": map[string]string{"heater": "GPIO17", "fan": "GPIO27"}, "active_low": activeLow})
		if err != nil {
			t.Fatal(err)
		}
		tr, err := m.Try("set", "/relays/heater", true)
		if err != nil || !tr.OK || string(tr.Effect) != "true" {
			t.Errorf("active_low %t: try set heater=true: %+v, %v; want ok, effect true", activeLow, tr, err)
		}
		if tr, err := m.Try("set", "/relays/lamp", true); err != nil || tr.OK {
			t.Errorf("active_low %t: try set lamp (not configured): %+v, %v; want not ok", activeLow, tr, err)
		}
		if err := m.Run("set", "/relays/heater", true); err != nil {
			t.Fatalf("active_low %t: run set heater=true: %v", activeLow, err)
		}
		if l, _ := lines.Level("GPIO17"); bool(l) == activeLow {
			t.Errorf("active_low %t: GPIO17 is %v after switching the heater on", activeLow, l)
		}
		if err := m.Run("switch", "/relays/fan", false); err != nil {
			t.Fatalf("active_low %t: run switch fan=false: %v", activeLow, err)
		}
		v, err := m.Sense("relays")
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]bool
		if err := json.Unmarshal(v, &got); err != nil || !got["heater"] || got["fan"] {
			t.Errorf("active_low %t: sensed %s (%v), want heater on, fan off", activeLow, v, err)
		}
		if err := m.Run("set", "/relays/heater", "on"); err == nil {
			t.Errorf("active_low %t: run with a target that is not a boolean succeeded", activeLow)
		}
		m.Close()
	}
}

// A relay whose line the board lacks is reported by the sensor's log, not
// as a sensor failure; switching it fails with the host's error.
func TestRelayLineMissing(t *testing.T) {
	m, err := sdktest.New(sdktest.Board{GPIO: sim.NewGPIO("GPIO17")}, map[string]any{
		"lines": map[string]string{"heater": "GPIO17", "fan": "GPIO99"}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	err = m.Run("set", "/relays/fan", true)
	if err == nil || !strings.Contains(err.Error(), sdk.ErrnoNoLine.Error()) {
		t.Errorf("switching a relay on a missing line: %v, want %v", err, sdk.ErrnoNoLine)
	}
	if _, err := m.Sense("relays"); err != nil {
		t.Errorf("sensing with one line missing: %v", err)
	}
	if len(m.Logs()) == 0 {
		t.Error("the missing line was not logged")
	}
}

// The pulse command switches the relay on for the time asked and back to
// what it was, and says what it did; a relay not configured is an error
// that says so.
func TestRelayPulse(t *testing.T) {
	lines := sim.NewGPIO("GPIO17", "GPIO27")
	m, err := sdktest.New(sdktest.Board{GPIO: lines}, map[string]any{"lines": map[string]string{"door": "GPIO17"}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var levels []bool
	if err := lines.Watch("GPIO17", func(l gpio.Level) { levels = append(levels, bool(l)) }); err != nil {
		t.Fatal(err)
	}
	res, err := m.Command("pulse", map[string]any{"relay": "door", "ms": 20})
	if err != nil {
		t.Fatal(err)
	}
	if string(res) != `{"line":"GPIO17","ms":20,"relay":"door"}` {
		t.Errorf("result %s", res)
	}
	if len(levels) != 2 || !levels[0] || levels[1] {
		t.Errorf("GPIO17 went %v, want on then off", levels)
	}
	if _, err := m.Command("pulse", map[string]any{"relay": "gate", "ms": 20}); err == nil || !strings.Contains(err.Error(), `relay "gate" is not configured`) {
		t.Errorf("pulse of a relay not configured: %v", err)
	}
	if _, err := m.Try("pulse", "/relays/door", true); err == nil || !strings.Contains(err.Error(), "is a command") {
		t.Errorf("try of a command: %v, want an error saying it is a command", err)
	}
}
