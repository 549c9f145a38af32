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

// A button held, one released, and a press between two sensings, on a
// simulated board: the module makes its lines inputs with the pull that
// suits the wiring, reports the level, and counts presses by their edges.
func TestButtonsOnASimBoard(t *testing.T) {
	seen, ready = map[string]*state{}, map[string]bool{} // a new instance's (go test -count)
	lines := sim.NewGPIO("GPIO5", "GPIO6")
	m, err := sdktest.New(sdktest.Board{GPIO: lines}, map[string]any{"buttons": map[string]any{
		"door":  map[string]any{"line": "GPIO5", "active_low": true},
		"panic": map[string]any{"line": "GPIO6"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	type button struct {
		Pressed bool `json:"pressed"`
		Presses int  `json:"presses"`
	}
	sense := func() map[string]button {
		t.Helper()
		v, err := m.Sense("buttons")
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]button
		if err := json.Unmarshal(v, &got); err != nil {
			t.Fatalf("sensed %s: %v", v, err)
		}
		return got
	}
	// Nothing drives the lines: the pulls decide (door pulled up: not
	// pressed, as it is wired to ground; panic pulled down).
	if got := sense(); got["door"].Pressed || got["panic"].Pressed {
		t.Fatalf("idle buttons read %+v, want none pressed", got)
	}
	if err := lines.Drive("GPIO5", gpio.Low); err != nil { // the door's switch closes to ground
		t.Fatal(err)
	}
	if got := sense(); !got["door"].Pressed || got["door"].Presses != 1 || got["panic"].Pressed {
		t.Fatalf("door held: %+v, want door pressed once", got)
	}
	// Short presses of panic, again and again, until one falls while the
	// module waits for the line's edges (it waits 20 ms a line).
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(3 * time.Millisecond):
			}
			lines.Drive("GPIO6", gpio.High)
			time.Sleep(2 * time.Millisecond)
			lines.Drive("GPIO6", gpio.Low)
		}
	}()
	deadline := time.Now().Add(time.Minute)
	for got := sense(); got["panic"].Presses == 0; got = sense() {
		if time.Now().After(deadline) {
			t.Fatalf("short presses of panic were never counted: %+v", got)
		}
	}
}

// The busy sensor says which busy_while buttons are pressed, and false
// when none is: the device defers disruptive changes meanwhile.
func TestBusySensor(t *testing.T) {
	seen, ready = map[string]*state{}, map[string]bool{}
	lines := sim.NewGPIO("GPIO5", "GPIO6")
	m, err := sdktest.New(sdktest.Board{GPIO: lines}, map[string]any{
		"buttons": map[string]any{
			"door":  map[string]any{"line": "GPIO5", "active_low": true},
			"panic": map[string]any{"line": "GPIO6"}},
		"busy_while": []string{"door"}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	busy := func() string {
		t.Helper()
		v, err := m.Sense("busy")
		if err != nil {
			t.Fatal(err)
		}
		return string(v)
	}
	if got := busy(); got != "false" {
		t.Fatalf("door closed: busy = %s, want false", got)
	}
	if err := lines.Drive("GPIO6", gpio.High); err != nil { // panic is not a busy button
		t.Fatal(err)
	}
	if got := busy(); got != "false" {
		t.Fatalf("panic pressed: busy = %s, want false", got)
	}
	if err := lines.Drive("GPIO5", gpio.Low); err != nil {
		t.Fatal(err)
	}
	if got := busy(); got != `"[door] pressed"` {
		t.Fatalf("door open: busy = %s, want \"[door] pressed\"", got)
	}
}
