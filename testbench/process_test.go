package testbench

import (
	"slices"
	"strings"
	"testing"
	"time"

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
        - {bus: i2c1, address: 0x48, chip: tmp102, power: GPIO22}
        - {bus: i2c2, address: 0x49, chip: tmp102}
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
		"line 9: agents[0].board.i2c[0].power: a process agent's chips have no power line",
		`line 10: agents[0].board.i2c[1].bus: "i2c2": the sim board in a ternd process has one I2C bus, i2c1`,
		"line 11: agents[0].board.serial: a process agent cannot have serial devices: a process agent's simulated board lives inside its ternd process",
		"line 13: agents[0].board.buttons: a process agent cannot have buttons",
		"line 15: agents[0].board.wires: a process agent cannot have wires",
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
	// q-001 is in-process: its fault is not refused for being one.
	if strings.Contains(err.Error(), "timeline[5]") {
		t.Errorf("the in-process agent's fault was refused:\n%v", err)
	}

	const good = `modules:
  thermostat: {plugin: thermostat}
agents:
  - name: p
    process: true
    groups: [g]
    board:
      i2c:
        - {bus: i2c1, address: 0x48, chip: tmp102}
    room: {heater: GPIO17, sensor: "i2c1:0x48", start: 18}
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

// A process agent's board and room become a sim section that ternd
// accepts, with the testbench's defaults (loss 0.1) and the room's start
// as its sensor's first reading.
func TestProcessSim(t *testing.T) {
	spec := AgentSpec{
		Board: BoardSpec{I2C: []ChipSpec{
			{Bus: "i2c1", Address: 0x48, Chip: "tmp102", Celsius: 30},
			{Bus: "i2c1", Address: 0x50, Chip: "eeprom24c02"},
			{Bus: "i2c1", Address: 0x20, Chip: "pcf8574"},
			{Bus: "i2c1", Address: 0x49, Chip: "tmp102", Celsius: 25},
		}},
		Room: &RoomSpec{Heater: "GPIO17", Sensor: "i2c1:72", Start: 18, Ambient: 15, Heat: 2},
	}
	s := processSim(spec)
	cfg := daemon.Config{Device: "p-001", Fleet: "testbench", Board: "sim", LogLevel: "info", Sim: s}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("ternd refuses the sim section %+v: %v", s, err)
	}
	var chips []string
	for _, c := range s.I2C {
		chips = append(chips, c.At+" "+c.Chip)
	}
	if want := []string{"i2c1:0x48 tmp102", "i2c1:0x50 24c02", "i2c1:0x20 pcf8574", "i2c1:0x49 tmp102"}; !slices.Equal(chips, want) {
		t.Errorf("chips %v, want %v", chips, want)
	}
	if c := s.I2C[0].Celsius; c == nil || *c != 18 {
		t.Errorf("the room's sensor starts at %v, want the room's start, 18", c)
	}
	if c := s.I2C[3].Celsius; c == nil || *c != 25 {
		t.Errorf("the other tmp102 starts at %v, want its celsius, 25", c)
	}
	if len(s.Rooms) != 1 {
		t.Fatalf("rooms %+v, want one", s.Rooms)
	}
	r := s.Rooms[0]
	if r.Heater != "GPIO17" || r.Sensor != "i2c1:0x48" || r.Heat != 2 || r.Loss != 0.1 || r.Ambient == nil || *r.Ambient != 15 {
		t.Errorf("room %+v (ambient %v), want heater GPIO17, sensor i2c1:0x48, heat 2, loss 0.1 (the testbench's default), ambient 15", r, r.Ambient)
	}
}

// A kill step's moments and victims come from the seed: the same seed
// gives the same plan, another seed another one; moments fall in the
// window, in order, and victims among the picked agents.
func TestKillPlan(t *testing.T) {
	ids := []string{"a", "b", "c"}
	k := &KillStep{Count: 20, Over: Duration(10 * time.Second)}
	p1, p2, other := killPlan(7, 30, ids, k), killPlan(7, 30, ids, k), killPlan(8, 30, ids, k)
	if !slices.Equal(p1, p2) {
		t.Errorf("the same seed gave two plans:\n%v\n%v", p1, p2)
	}
	if slices.Equal(p1, other) {
		t.Errorf("seeds 7 and 8 gave the same plan %v", p1)
	}
	victims := map[string]bool{}
	for i, b := range p1 {
		if b.at < 0 || b.at >= 10*time.Second || (i > 0 && b.at < p1[i-1].at) {
			t.Errorf("kill %d at %v: outside [0, 10s) or out of order", i, b.at)
		}
		if !slices.Contains(ids, b.id) {
			t.Errorf("kill %d of %q, not a picked agent", i, b.id)
		}
		victims[b.id] = true
	}
	if len(victims) != len(ids) {
		t.Errorf("20 kills of 3 agents hit only %v", victims)
	}
	if p := killPlan(7, 30, ids, &KillStep{Count: 2}); p[0].at != 0 || p[1].at != 0 {
		t.Errorf("without over, kills are at the step's time; got %v", p)
	}
}
