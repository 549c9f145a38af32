//go:build !wasip1

package sdktest_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/sdk"
	"github.com/tern-iot/tern/sdk/sdktest"
)

// The module of this test binary: a lamp whose condition reads another
// part of the state, and a job and sensor that reach for hardware where
// they should and where they should not.
func init() {
	sdk.Module("probe", "1.0.0")
	sdk.Requests("gpio")
	sdk.Job("lamp", "/lamps/:name", sdk.Any, sdk.Action{
		Condition: func(c *sdk.Context) (bool, error) {
			mains, err := c.Read("/mains")
			if err != nil {
				return false, err
			}
			on, ok := mains.Bool()
			return ok && on, nil
		},
		Run: func(c *sdk.Context) error {
			var on bool
			if err := c.Target(&on); err != nil {
				return err
			}
			return sdk.GPIOWrite(c.Param("name"), on)
		},
	})
	sdk.Job("greedy", "/greedy", sdk.Any, sdk.Action{
		Condition: func(*sdk.Context) (bool, error) { return true, sdk.GPIOWrite("GPIO1", true) },
		Run:       func(*sdk.Context) error { return nil },
	})
	sdk.Sensor("reader", "/reader", time.Second, func(c *sdk.Context) (any, error) {
		if _, err := c.Read("/mains"); err != nil {
			return nil, err
		}
		return nil, nil
	})
}

func TestHarness(t *testing.T) {
	lines := sim.NewGPIO("GPIO1")
	m, err := sdktest.New(sdktest.Board{GPIO: lines}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := sdktest.New(sdktest.Board{}, nil); err == nil {
		t.Error("a second Module was made while the first was in use")
	}
	if m.Manifest().Name != "probe" || len(m.Manifest().Jobs) != 2 {
		t.Errorf("manifest %+v", m.Manifest())
	}

	// The condition reads the state set, at another path than its own.
	if tr, err := m.Try("lamp", "/lamps/GPIO1", true); err != nil || tr.OK {
		t.Errorf("try with no mains in the state: %+v, %v; want not ok", tr, err)
	}
	if err := m.SetState(map[string]any{"mains": true}); err != nil {
		t.Fatal(err)
	}
	if tr, err := m.Try("lamp", "/lamps/GPIO1", true); err != nil || !tr.OK || string(tr.Effect) != "true" {
		t.Errorf("try with mains on: %+v, %v; want ok, effect true", tr, err)
	}
	// The path binds the pattern's parameters; the run drives the line.
	if err := m.Run("lamp", "/lamps/GPIO1", true); err != nil {
		t.Fatal(err)
	}
	if l, _ := lines.Level("GPIO1"); l != gpio.High {
		t.Error("the run did not drive GPIO1")
	}
	// Errors as ternd gives them.
	for _, tc := range []struct {
		what string
		err  func() error
		want string
	}{
		{"hardware while planning", func() error { _, err := m.Try("greedy", "/greedy", 1); return err }, sdk.ErrnoPlanning.Error()},
		{"a line the board lacks", func() error { return m.Run("lamp", "/lamps/GPIO9", true) }, sdk.ErrnoNoLine.Error()},
		{"the state from a sensor", func() error { _, err := m.Sense("reader"); return err }, sdk.ErrnoNoState.Error()},
		{"a path the job does not bind", func() error { return m.Run("lamp", "/lamp", true) }, "works on /lamps/:name, not on /lamp"},
		{"no such job", func() error { return m.Run("fan", "/fans/x", true) }, `no job "fan"`},
		{"no such sensor", func() error { _, err := m.Sense("fan"); return err }, `no sensor "fan"`},
	} {
		if err := tc.err(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.what, err, tc.want)
		}
	}
}

// Without sdktest, the SDK outside wasm reaches no hardware.
func TestNoHostOutsideTheHarness(t *testing.T) {
	err := sdk.GPIOWrite("GPIO1", true)
	if err == nil || errors.Is(err, sdk.ErrnoNoLine) {
		t.Fatalf("GPIOWrite outside a module and the harness: %v, want the SDK's no-host error", err)
	}
}

// A test of a module's lamp job, as ternd would call it: the planner's
// question, then the task, on a simulated line.
func Example() {
	lines := sim.NewGPIO("GPIO1")
	m, err := sdktest.New(sdktest.Board{GPIO: lines}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	m.SetState(map[string]any{"mains": true})
	t, err := m.Try("lamp", "/lamps/GPIO1", true)
	fmt.Println(t.OK, string(t.Effect), err)
	fmt.Println(m.Run("lamp", "/lamps/GPIO1", true))
	level, _ := lines.Level("GPIO1")
	fmt.Println(level)
	// Output:
	// true true <nil>
	// <nil>
	// High
}
