package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tern-iot/tern/boards"
	"github.com/tern-iot/tern/hal/sim"
)

// SimConfig is the simulated world around a sim board (board: sim): chips
// on its I2C bus and rooms that couple a heater line to a temperature
// sensor. It lets a separate ternd process run against simulated devices,
// as the testbench's process agents do.
//
//	sim:
//	  i2c:
//	    - {at: i2c1:0x48, chip: tmp102, celsius: 18}
//	    - {at: i2c1:0x20, chip: pcf8574, pulled_low: [3]}
//	    - {at: i2c1:0x50, chip: 24c02, data: "serial=0042"}
//	  rooms:
//	    - {heater: GPIO17, sensor: i2c1:0x48, heat: 2, loss: 0.01, ambient: 15}
type SimConfig struct {
	// I2C are the chips on the board's buses.
	I2C []SimChip `yaml:"i2c" json:"i2c"`
	// Rooms are the physics: each room is warmed by a heater on a GPIO
	// line and measured by a TMP102 listed under I2C.
	Rooms []SimRoom `yaml:"rooms" json:"rooms"`
}

// SimChip is one simulated I2C chip.
type SimChip struct {
	// At is the chip's bus and address, e.g. i2c1:0x48.
	At string `yaml:"at" json:"at"`
	// Chip is the part: tmp102 (temperature sensor), pcf8574 (8-bit I/O
	// expander) or 24c02 (256-byte EEPROM).
	Chip string `yaml:"chip" json:"chip"`
	// Celsius is what a tmp102 reads at start. Default 20.
	Celsius *float64 `yaml:"celsius" json:"celsius"`
	// PulledLow are a pcf8574's pins (0-7) held low from outside, as
	// pressed buttons would.
	PulledLow []int `yaml:"pulled_low" json:"pulled_low"`
	// Data is a 24c02's contents from address 0 (at most 256 bytes); the
	// rest reads erased (0xFF).
	Data string `yaml:"data" json:"data"`
}

// SimRoom is a room with a heater and a thermometer. Every 50 ms of wall
// time: with the heater line high, the room warms by Heat × 0.05 °C; and
// it loses Loss × 0.05 of its difference to Ambient.
type SimRoom struct {
	// Heater is the GPIO line that switches the heater (high = on).
	Heater string `yaml:"heater" json:"heater"`
	// Sensor is the bus:address of the room's tmp102 (listed under i2c);
	// the room starts at its celsius.
	Sensor string `yaml:"sensor" json:"sensor"`
	// Heat is how many °C per second the heater adds. Default 1.
	Heat float64 `yaml:"heat" json:"heat"`
	// Loss is the fraction per second of the difference to Ambient the
	// room loses (0: perfectly insulated, the default).
	Loss float64 `yaml:"loss" json:"loss"`
	// Ambient is the temperature outside, °C. Default: the room's start.
	Ambient *float64 `yaml:"ambient" json:"ambient"`
}

// simTick is the physics' time step.
const simTick = 50 * time.Millisecond

// IsZero reports whether nothing is simulated.
func (s SimConfig) IsZero() bool { return len(s.I2C) == 0 && len(s.Rooms) == 0 }

// validate says what is wrong with the sim section, all at once; board is
// the configured board's name.
func (s SimConfig) validate(board string) []error {
	if s.IsZero() {
		return nil
	}
	if board != "sim" {
		return []error{fmt.Errorf("sim: simulated devices need board: sim (board is %q); remove the sim section or set board: sim", board)}
	}
	var errs []error
	b, err := boards.Lookup("sim")
	if err != nil {
		return []error{fmt.Errorf("sim: %w", err)}
	}
	chips := map[string]string{} // canonical bus:address → chip
	for i, c := range s.I2C {
		where := fmt.Sprintf("sim.i2c[%d]", i)
		bus, addr, err := parseBusAddr(c.At)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.at: %w", where, err))
		} else if bus != simBus {
			errs = append(errs, fmt.Errorf("%s.at: the sim board has one I2C bus, %s, not %q", where, simBus, bus))
		} else {
			key := fmt.Sprintf("%s:%#x", bus, addr)
			if _, dup := chips[key]; dup {
				errs = append(errs, fmt.Errorf("%s.at: two chips at %s; give each its own address", where, key))
			}
			chips[key] = c.Chip
		}
		switch c.Chip {
		case "tmp102":
		case "pcf8574":
			for _, p := range c.PulledLow {
				if p < 0 || p > 7 {
					errs = append(errs, fmt.Errorf("%s.pulled_low: pin %d does not exist; a pcf8574 has pins 0-7", where, p))
				}
			}
		case "24c02":
			if len(c.Data) > 256 {
				errs = append(errs, fmt.Errorf("%s.data: %d bytes; a 24c02 holds 256", where, len(c.Data)))
			}
		default:
			errs = append(errs, fmt.Errorf("%s.chip: %q is not a simulated chip; use tmp102, pcf8574 or 24c02", where, c.Chip))
		}
		if c.Celsius != nil && c.Chip != "tmp102" {
			errs = append(errs, fmt.Errorf("%s.celsius: only a tmp102 has a temperature", where))
		}
		if len(c.PulledLow) > 0 && c.Chip != "pcf8574" {
			errs = append(errs, fmt.Errorf("%s.pulled_low: only a pcf8574 has pins", where))
		}
		if c.Data != "" && c.Chip != "24c02" {
			errs = append(errs, fmt.Errorf("%s.data: only a 24c02 has contents", where))
		}
	}
	lines := b.Lines()
	heaters := map[string]bool{}
	for i, r := range s.Rooms {
		where := fmt.Sprintf("sim.rooms[%d]", i)
		switch {
		case r.Heater == "":
			errs = append(errs, fmt.Errorf("%s.heater: required (the GPIO line that switches the heater, e.g. GPIO17)", where))
		case !slices.Contains(lines, r.Heater):
			errs = append(errs, fmt.Errorf("%s.heater: the sim board has no line %q (it has the Raspberry Pi header's names, e.g. GPIO17)", where, r.Heater))
		case heaters[r.Heater]:
			errs = append(errs, fmt.Errorf("%s.heater: %s already heats another room", where, r.Heater))
		}
		heaters[r.Heater] = true
		bus, addr, err := parseBusAddr(r.Sensor)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.sensor: %w", where, err))
		} else if chip := chips[fmt.Sprintf("%s:%#x", bus, addr)]; chip != "tmp102" {
			errs = append(errs, fmt.Errorf("%s.sensor: no tmp102 at %s; list it under sim.i2c with chip: tmp102", where, r.Sensor))
		}
		if r.Heat < 0 || r.Loss < 0 {
			errs = append(errs, fmt.Errorf("%s: heat and loss must not be negative (heat %v, loss %v)", where, r.Heat, r.Loss))
		}
	}
	return errs
}

// simBus is the sim board's I2C bus.
const simBus = "i2c1"

// parseBusAddr reads bus:address, e.g. i2c1:0x48 (decimal works too).
func parseBusAddr(s string) (string, uint16, error) {
	bus, a, ok := strings.Cut(s, ":")
	if !ok || bus == "" {
		return "", 0, fmt.Errorf("%q: want bus:address, e.g. i2c1:0x48", s)
	}
	n, err := strconv.ParseUint(a, 0, 16)
	if err != nil || n > 0x7f {
		return "", 0, fmt.Errorf("%q: the address must be a 7-bit number, e.g. 0x48", s)
	}
	return bus, uint16(n), nil
}

// build attaches the chips to bus and returns the physics, which runs
// until ctx is done. The configuration was validated.
func (s SimConfig) build(lines *sim.GPIO, bus *sim.I2C) (physics func(ctx context.Context), err error) {
	sensors := map[string]*sim.TMP102{}
	start := map[string]float64{}
	for _, c := range s.I2C {
		b, addr, err := parseBusAddr(c.At)
		if err != nil {
			return nil, err
		}
		key := fmt.Sprintf("%s:%#x", b, addr)
		switch c.Chip {
		case "tmp102":
			celsius := 20.0
			if c.Celsius != nil {
				celsius = *c.Celsius
			}
			t := sim.NewTMP102(celsius)
			sensors[key], start[key] = t, celsius
			bus.Attach(b, addr, t)
		case "pcf8574":
			x := sim.NewPCF8574()
			for _, p := range c.PulledLow {
				x.PullLow(p, true)
			}
			bus.Attach(b, addr, x)
		case "24c02":
			e := sim.NewEEPROM24C02()
			copy(e.Mem[:], c.Data)
			bus.Attach(b, addr, e)
		default:
			return nil, fmt.Errorf("sim: unknown chip %q", c.Chip)
		}
	}
	var rooms []*sim.Room
	for _, r := range s.Rooms {
		b, addr, err := parseBusAddr(r.Sensor)
		if err != nil {
			return nil, err
		}
		key := fmt.Sprintf("%s:%#x", b, addr)
		sensor := sensors[key]
		if sensor == nil {
			return nil, errors.New("sim: room sensor is not a tmp102")
		}
		p := sim.RoomParams{Heat: r.Heat, Loss: r.Loss, Ambient: start[key]}
		if r.Ambient != nil {
			p.Ambient = *r.Ambient
		}
		rooms = append(rooms, sim.NewRoom(lines, r.Heater, sensor, start[key], p))
	}
	if len(rooms) == 0 {
		return nil, nil
	}
	return func(ctx context.Context) {
		t := time.NewTicker(simTick)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			for _, r := range rooms {
				r.Step(simTick)
			}
		}
	}, nil
}
