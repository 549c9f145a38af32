package testbench

import (
	"strings"
	"testing"

	"github.com/tern-iot/tern/internal/daemon"
)

// What a process agent cannot have is refused at parse time, each with
// its line and why; what it can have parses.
func TestProcessAgentRefusals(t *testing.T) {
	const bad = `modules:
  thermostat: {plugin: thermostat}
agents:
  - name: p
    process: true
    groups: [g]
    board:
      i2c:
        - {at: i2c1:0x48, chip: tmp102, power: GPIO22}
        - {at: i2c2:0x49, chip: tmp102}
      serial:
        - {port: serial0, device: gps}
      buttons:
        - {line: GPIO5}
      wires:
        - {from: GPIO6, to: GPIO13}
  - name: q
    groups: [g]
timeline:
  - fault: {kind: sensor_stuck, group: g, chip: "i2c1:0x48"}
  - fault: {kind: network_cut, device: p-001}
  - fault: {kind: clock_jump, all: true, by: 1h}
  - press: {device: p-001, line: GPIO5}
  - move_gps: {device: p-001, lat: 1, lon: 2}
  - fault: {kind: serial_garbage, device: q-001, port: serial0}
assertions:
  - converged: {all: true}
`
	_, err := Parse([]byte(bad))
	if err == nil {
		t.Fatal("parsed")
	}
	for _, want := range []string{
		"line 13: agents[0].board.buttons: a process agent cannot have buttons: a process agent's simulated board lives inside its ternd process",
		"line 20: timeline[0]: fault sensor_stuck: p-001 is a process agent (process: true)",
		"line 21: timeline[1]: fault network_cut: p-001 is a process agent (process: true): the cut goes through the dialer",
		"line 22: timeline[2]: fault clock_jump: p-001 is a process agent",
		"line 23: timeline[3]: press: p-001 is a process agent",
		"line 24: timeline[4]: move_gps: p-001 is a process agent",
		"pick in-process agents only, or drop process: true",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error\n%v\ndoes not say\n%s", err, want)
		}
	}
	// q-001 is in-process: its fault is not refused for being one. What
	// ternd's sim section builds (power lines, other buses, serial
	// devices, wires) is not refused either.
	for _, not := range []string{"timeline[5]", "board.i2c", "board.serial", "board.wires"} {
		if strings.Contains(err.Error(), not) {
			t.Errorf("error mentions %s:\n%v", not, err)
		}
	}

	const good = `modules:
  thermostat: {plugin: thermostat}
agents:
  - name: p
    process: true
    groups: [g]
    board:
      i2c:
        - {at: i2c1:0x48, chip: tmp102, celsius: 18}
      rooms:
        - {heater: GPIO17, sensor: i2c1:0x48}
timeline:
  - fault: {kind: broker_down, for: 1s}
  - restart: {device: p-001}
  - kill: {group: g, count: 3, over: 5s, down: 100ms}
  - push: {group: g, target: {room: {temp: 22}}}
assertions:
  - converged: {all: true}
`
	if _, err := Parse([]byte(good)); err != nil {
		t.Fatalf("a process agent with chips, a room, broker_down, restart and kill was refused: %v", err)
	}
}

// A process agent's board is ternd's sim section as it stands: what the
// testbench accepts, ternd accepts, and what ternd refuses, the testbench
// refuses too (one format, one validation).
func TestProcessBoardIsSimSection(t *testing.T) {
	const scenario = `modules:
  thermostat: {plugin: thermostat}
agents:
  - name: p
    process: true
    board:
      i2c:
        - {at: i2c1:0x48, chip: tmp102, celsius: 30, power: GPIO22}
        - {at: i2c1:0x50, chip: 24c02, data: tern}
        - {at: i2c1:0x20, chip: pcf8574, pulled_low: [1]}
      rooms:
        - {heater: GPIO17, sensor: i2c1:0x48, heat: 2, loss: 0.1, ambient: 15}
      serial:
        - {port: serial0, device: gps, lat: 1, lon: 2}
      wires:
        - {from: GPIO5, to: GPIO6}
assertions:
  - converged: {all: true}
`
	sc, err := Parse([]byte(scenario))
	if err != nil {
		t.Fatal(err)
	}
	cfg := daemon.Config{Device: "p-001", Fleet: "testbench", Board: "sim", LogLevel: "info", Sim: sc.Agents[0].Board}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("ternd refuses the board the testbench accepted: %v", err)
	}
	bad := strings.Replace(scenario, "heater: GPIO17", "heater: GPIO99", 1)
	_, err = Parse([]byte(bad))
	cfg.Sim.Rooms[0].Heater = "GPIO99"
	err2 := cfg.Validate()
	const want = `rooms[0].heater: the sim board has no line "GPIO99"`
	if err == nil || !strings.Contains(err.Error(), "agents[0].board."+want) {
		t.Errorf("testbench: err = %v, want it to say agents[0].board.%s", err, want)
	}
	if err2 == nil || !strings.Contains(err2.Error(), "sim."+want) {
		t.Errorf("ternd: err = %v, want it to say sim.%s", err2, want)
	}
}
