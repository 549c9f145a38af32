//go:build !wasip1

package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/sdk"
	"github.com/tern-iot/tern/sdk/sdktest"
)

// Two TMP102s on a simulated bus read as the module reports them; a
// sensor that does not answer fails the reading with the bus's error.
func TestTemperatureOnASimBoard(t *testing.T) {
	bus := sim.NewI2C("i2c1")
	attic, cellar := sim.NewTMP102(21.5), sim.NewTMP102(-3.25)
	bus.Attach("i2c1", 0x48, attic)
	bus.Attach("i2c1", 0x49, cellar)
	m, err := sdktest.New(sdktest.Board{I2C: bus}, map[string]any{"sensors": map[string]any{
		"attic": map[string]any{"bus": "i2c1", "address": 0x48}, "cellar": map[string]any{"bus": "i2c1", "address": 0x49}}})
	if err != nil {
		t.Fatal(err)
	}
	v, err := m.Sense("temperatures")
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	var got map[string]float64
	if err := json.Unmarshal(v, &got); err != nil || got["attic"] != 21.5 || got["cellar"] != -3.25 {
		t.Fatalf("sensed %s (%v), want attic 21.5, cellar -3.25", v, err)
	}
	attic.Set(30)
	if v, err = m.Sense("temperatures"); err != nil || !strings.Contains(string(v), `"attic":30`) {
		t.Errorf("after the attic warmed to 30: %s, %v", v, err)
	}
	m.Close()

	m, err = sdktest.New(sdktest.Board{I2C: bus}, map[string]any{"sensors": map[string]any{"garage": map[string]any{"bus": "i2c1", "address": 0x4a}}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Sense("temperatures"); err == nil || !strings.Contains(err.Error(), sdk.ErrnoNoDevice.Error()) {
		t.Errorf("a sensor that does not answer: %v, want %q", err, sdk.ErrnoNoDevice.Error())
	}
}
