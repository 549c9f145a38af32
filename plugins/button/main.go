// Command button is a job module that reports push buttons on GPIO inputs:
// /buttons/<name> is {"pressed": bool, "presses": n}. It watches the lines'
// edges, so a press shorter than the sensing interval is still counted.
//
// Configuration:
//
//	config:
//	  buttons:
//	    door: {line: GPIO5, active_low: true}   # to ground, with the pull-up
//	  busy_while: [door]   # the device is busy while the door is pressed (open)
//
// /busy is a busy sensor (sdk.BusySensor): while a button named in
// busy_while is pressed it says so ("door is pressed"), and the device
// defers the disruptive changes of rollouts (docs/rollouts.md); otherwise
// it is false.
package main

import (
	"fmt"
	"sort"
	"time"

	"github.com/tern-iot/tern/sdk"
)

func init() {
	sdk.Module("button", "0.1.0")
	sdk.Requests("gpio")
	sdk.Sensor("buttons", "/buttons", 100*time.Millisecond, sense)
	sdk.BusySensor("busy", "/busy", 100*time.Millisecond, senseBusy)
}

func main() {}

type button struct {
	Line      string `json:"line"`
	ActiveLow bool   `json:"active_low"`
}

type config struct {
	Buttons   map[string]button `json:"buttons"`
	BusyWhile []string          `json:"busy_while"`
}

type state struct {
	Pressed bool `json:"pressed"`
	Presses int  `json:"presses"`
}

var (
	seen  = map[string]*state{} // per instance: presses since it started
	ready = map[string]bool{}   // lines already made inputs
)

// sense reads each button, waiting briefly for an edge so a quick press
// between two sensings is not missed.
func sense(c *sdk.Context) (any, error) {
	loaded, err := sdk.ConfigOf[config](c)
	if err != nil || len(loaded.Buttons) == 0 {
		return nil, fmt.Errorf("button: configure buttons: {name: {line: GPIO5, active_low: true}} (%v)", err)
	}
	names := make([]string, 0, len(loaded.Buttons))
	for n := range loaded.Buttons {
		names = append(names, n)
	}
	sort.Strings(names)
	out := map[string]state{}
	for _, name := range names {
		b := loaded.Buttons[name]
		if err := input(name, b); err != nil {
			return nil, err
		}
		st := seen[name]
		if st == nil {
			st = &state{}
			seen[name] = st
		}
		// Each edge is half a press or half a release; look at the level
		// after each to count presses.
		for range 4 {
			edge, err := sdk.GPIOWaitEdge(b.Line, 20*time.Millisecond)
			if err != nil {
				return nil, fmt.Errorf("button %s: %w", name, err)
			}
			if !edge {
				break
			}
			high, err := sdk.GPIORead(b.Line)
			if err != nil {
				return nil, err
			}
			if pressed := high != b.ActiveLow; pressed && !st.Pressed {
				st.Presses++
			}
			st.Pressed = high != b.ActiveLow
		}
		high, err := sdk.GPIORead(b.Line)
		if err != nil {
			return nil, fmt.Errorf("button %s: %w", name, err)
		}
		if pressed := high != b.ActiveLow; pressed && !st.Pressed {
			st.Presses++
		}
		st.Pressed = high != b.ActiveLow
		out[name] = *st
	}
	return out, nil
}

// input makes b's line an input, once.
func input(name string, b button) error {
	if ready[b.Line] {
		return nil
	}
	pull := sdk.PullDown
	if b.ActiveLow {
		pull = sdk.PullUp
	}
	if err := sdk.GPIOIn(b.Line, pull); err != nil {
		return fmt.Errorf("button %s: %w", name, err)
	}
	ready[b.Line] = true
	return nil
}

// senseBusy says which busy_while buttons are pressed, or false.
func senseBusy(c *sdk.Context) (any, error) {
	loaded, err := sdk.ConfigOf[config](c)
	if err != nil {
		return nil, err
	}
	var pressed []string
	for _, name := range loaded.BusyWhile {
		b, ok := loaded.Buttons[name]
		if !ok {
			return nil, fmt.Errorf("button: busy_while names %q, which is not among the buttons", name)
		}
		if err := input(name, b); err != nil {
			return nil, err
		}
		high, err := sdk.GPIORead(b.Line)
		if err != nil {
			return nil, fmt.Errorf("button %s: %w", name, err)
		}
		if high != b.ActiveLow {
			pressed = append(pressed, name)
		}
	}
	if len(pressed) == 0 {
		return false, nil
	}
	sort.Strings(pressed)
	return fmt.Sprintf("%v pressed", pressed), nil
}
