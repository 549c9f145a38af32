package sim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tern-iot/tern/hal/gpio"
)

// BoardSpec is what is wired to a simulated board: chips on its I2C
// buses, rooms that couple a heater line to a temperature sensor, serial
// devices on pseudo-terminals, push buttons and jumper wires. ternd.yaml's
// sim section and the testbench's agents (board:) are both a BoardSpec:
//
//	i2c:
//	  - {at: i2c1:0x48, chip: tmp102, celsius: 18, power: GPIO22}
//	  - {at: i2c1:0x20, chip: pcf8574, pulled_low: [3]}
//	  - {at: i2c1:0x50, chip: 24c02, data: "serial=0042"}
//	rooms:
//	  - {heater: GPIO17, sensor: i2c1:0x48, heat: 2, loss: 0.1, ambient: 15}
//	serial:
//	  - {port: serial0, device: gps, lat: 52.5, lon: 13.4}
//	buttons:
//	  - {line: GPIO27, active_low: true}
//	wires:
//	  - {from: GPIO5, to: GPIO6}
type BoardSpec struct {
	// I2C are the chips on the board's buses.
	I2C []ChipSpec `yaml:"i2c" json:"i2c,omitempty"`
	// Rooms are the physics: each room is warmed by a heater on a GPIO
	// line and measured by a tmp102 listed under I2C.
	Rooms []RoomSpec `yaml:"rooms" json:"rooms,omitempty"`
	// Serial are the serial devices, each on a pseudo-terminal that the
	// board's serial port opens.
	Serial []SerialSpec `yaml:"serial" json:"serial,omitempty"`
	// Buttons are push buttons on GPIO lines; Board.Press presses one.
	Buttons []ButtonSpec `yaml:"buttons" json:"buttons,omitempty"`
	// Wires are jumpers from one line to another.
	Wires []WireSpec `yaml:"wires" json:"wires,omitempty"`
}

// ChipSpec is one simulated I2C chip.
type ChipSpec struct {
	// At is the chip's bus and address, e.g. i2c1:0x48.
	At string `yaml:"at" json:"at"`
	// Chip is the part: tmp102 (temperature sensor), pcf8574 (8-bit I/O
	// expander) or 24c02 (256-byte EEPROM).
	Chip string `yaml:"chip" json:"chip"`
	// Celsius is what a tmp102 reads at start, and the start of the room
	// it measures. Default 20.
	Celsius *float64 `yaml:"celsius" json:"celsius,omitempty"`
	// PulledLow are a pcf8574's pins (0-7) held low from outside, as
	// pressed buttons would.
	PulledLow []int `yaml:"pulled_low" json:"pulled_low,omitempty"`
	// Data is a 24c02's contents from address 0 (at most 256 bytes); the
	// rest reads erased (0xFF).
	Data string `yaml:"data" json:"data,omitempty"`
	// Power is the GPIO line that supplies the chip: low switches it off,
	// low then high power-cycles it (which clears stuck and nack faults).
	// The board holds the line high from outside until the agent drives
	// it.
	Power string `yaml:"power" json:"power,omitempty"`
}

// RoomSpec is a room with a heater and a thermometer:
//
//	dT/dt = heat·[heater on] − loss·(T − ambient)
//
// in °C and seconds. The room starts at its sensor's celsius.
type RoomSpec struct {
	// Heater is the GPIO line that switches the heater (high = on).
	Heater string `yaml:"heater" json:"heater"`
	// Sensor is the bus:address of the room's tmp102 (listed under i2c).
	Sensor string `yaml:"sensor" json:"sensor"`
	// Heat is how many °C per second the heater adds. Default 1.
	Heat float64 `yaml:"heat" json:"heat,omitempty"`
	// Loss is the fraction per second of the difference to Ambient the
	// room loses (0: perfectly insulated, the default).
	Loss float64 `yaml:"loss" json:"loss,omitempty"`
	// Ambient is the temperature outside, °C. Default: the room's start.
	Ambient *float64 `yaml:"ambient" json:"ambient,omitempty"`
}

// SerialSpec is a serial device on a port: a gps (NMEA sentences at Lat,
// Lon, with a fix, four times a second) or a modem (AT commands).
type SerialSpec struct {
	Port   string  `yaml:"port" json:"port"`
	Device string  `yaml:"device" json:"device"`
	Lat    float64 `yaml:"lat" json:"lat,omitempty"`
	Lon    float64 `yaml:"lon" json:"lon,omitempty"`
}

// ButtonSpec is a push button on a line.
type ButtonSpec struct {
	Line string `yaml:"line" json:"line"`
	// ActiveLow: the button pulls the line to ground when pressed.
	ActiveLow bool `yaml:"active_low" json:"active_low,omitempty"`
}

// WireSpec is a jumper from one line to another.
type WireSpec struct {
	From string `yaml:"from" json:"from"`
	To   string `yaml:"to" json:"to"`
}

// Chips are the simulated chips a ChipSpec may name.
var Chips = []string{"tmp102", "pcf8574", "24c02"}

// SerialDevices are the simulated serial devices a SerialSpec may name.
var SerialDevices = []string{"gps", "modem"}

// DefaultBus is the bus every simulated board has, whether or not a chip
// is on it.
const DefaultBus = "i2c1"

// IsZero reports whether nothing is wired to the board.
func (s BoardSpec) IsZero() bool {
	return len(s.I2C) == 0 && len(s.Rooms) == 0 && len(s.Serial) == 0 && len(s.Buttons) == 0 && len(s.Wires) == 0
}

// ParseAt reads a chip's place, bus:address, e.g. i2c1:0x48 (decimal
// works too), and returns it canonical (i2c1:0x48).
func ParseAt(s string) (bus string, addr uint16, canonical string, err error) {
	bus, a, ok := strings.Cut(s, ":")
	if !ok || bus == "" {
		return "", 0, "", fmt.Errorf("%q: want bus:address, e.g. i2c1:0x48", s)
	}
	n, err := strconv.ParseUint(a, 0, 16)
	if err != nil || n > 0x7f {
		return "", 0, "", fmt.Errorf("%q: the address must be a 7-bit number, e.g. 0x48", s)
	}
	return bus, uint16(n), chipAt(bus, uint16(n)), nil
}

func chipAt(bus string, addr uint16) string { return fmt.Sprintf("%s:%#x", bus, addr) }

// Validate says what is wrong with the spec, all at once, for a board
// with the given GPIO lines. Each error starts with the key it is about
// (i2c[0].at, rooms[1].heater…), for the caller to prefix with where the
// spec sits.
func (s BoardSpec) Validate(lines []string) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	line := func(where, name string) {
		if !slices.Contains(lines, name) {
			bad("%s: the sim board has no line %q (it has the Raspberry Pi header's names, e.g. GPIO17)", where, name)
		}
	}
	chips := map[string]string{} // canonical place → chip
	for i, c := range s.I2C {
		where := fmt.Sprintf("i2c[%d]", i)
		if _, _, at, err := ParseAt(c.At); err != nil {
			bad("%s.at: %w", where, err)
		} else {
			if _, dup := chips[at]; dup {
				bad("%s.at: two chips at %s; give each its own address", where, at)
			}
			chips[at] = c.Chip
		}
		switch c.Chip {
		case "tmp102":
		case "pcf8574":
			for _, p := range c.PulledLow {
				if p < 0 || p > 7 {
					bad("%s.pulled_low: pin %d does not exist; a pcf8574 has pins 0-7", where, p)
				}
			}
		case "24c02":
			if len(c.Data) > 256 {
				bad("%s.data: %d bytes; a 24c02 holds 256", where, len(c.Data))
			}
		default:
			bad("%s.chip: %q is not a simulated chip; use %s", where, c.Chip, orList(Chips))
		}
		if c.Celsius != nil && c.Chip != "tmp102" {
			bad("%s.celsius: only a tmp102 has a temperature", where)
		}
		if len(c.PulledLow) > 0 && c.Chip != "pcf8574" {
			bad("%s.pulled_low: only a pcf8574 has pins", where)
		}
		if c.Data != "" && c.Chip != "24c02" {
			bad("%s.data: only a 24c02 has contents", where)
		}
		if c.Power != "" {
			line(where+".power", c.Power)
		}
	}
	heaters := map[string]bool{}
	for i, r := range s.Rooms {
		where := fmt.Sprintf("rooms[%d]", i)
		switch {
		case r.Heater == "":
			bad("%s.heater: required (the GPIO line that switches the heater, e.g. GPIO17)", where)
		case !slices.Contains(lines, r.Heater):
			line(where+".heater", r.Heater)
		case heaters[r.Heater]:
			bad("%s.heater: %s already heats another room", where, r.Heater)
		}
		heaters[r.Heater] = true
		if _, _, at, err := ParseAt(r.Sensor); err != nil {
			bad("%s.sensor: %w", where, err)
		} else if chips[at] != "tmp102" {
			bad("%s.sensor: no tmp102 at %s; list it under i2c with chip: tmp102", where, r.Sensor)
		}
		if r.Heat < 0 || r.Loss < 0 {
			bad("%s: heat and loss must not be negative (heat %v, loss %v)", where, r.Heat, r.Loss)
		}
	}
	ports := map[string]bool{}
	for i, d := range s.Serial {
		where := fmt.Sprintf("serial[%d]", i)
		if !slices.Contains(SerialDevices, d.Device) {
			bad("%s.device: %q is not a simulated serial device; use %s", where, d.Device, orList(SerialDevices))
		}
		switch {
		case d.Port == "":
			bad("%s.port: required, e.g. serial0", where)
		case ports[d.Port]:
			bad("%s.port: two devices on port %s; give each its own port", where, d.Port)
		}
		ports[d.Port] = true
	}
	for i, b := range s.Buttons {
		line(fmt.Sprintf("buttons[%d].line", i), b.Line)
	}
	for i, w := range s.Wires {
		line(fmt.Sprintf("wires[%d].from", i), w.From)
		line(fmt.Sprintf("wires[%d].to", i), w.To)
	}
	return errs
}

func orList(names []string) string {
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// Board is a simulated board built from a BoardSpec: its lines, buses and
// serial ports, and the world wired to them, which a test acts on from
// outside (Chip, SerialDevice, Press, Rooms).
type Board struct {
	GPIO *GPIO
	I2C  *I2C
	// Ports maps each serial port of the spec to its pseudo-terminal's
	// path, for the real serial backend to open.
	Ports map[string]string

	chips   map[string]*FaultyDevice // by canonical place
	serial  map[string]*SerialDevice
	ports   []string // serial ports in the spec's order
	buttons map[string]ButtonSpec
	rooms   []*Room
}

// SerialDevice is a simulated serial device behind its fault switch.
type SerialDevice struct {
	Fault *FaultySerial
	// GPS is the device when it is a gps, else nil.
	GPS   *NMEAGPS
	close func() error
}

// NewBoard builds spec, which Validate accepted, on a board with the
// given GPIO lines. rng drives the serial devices' garbage (nil: seeded
// from the time). Close the board to close its pseudo-terminals.
func NewBoard(spec BoardSpec, lines []string, rng *rand.Rand) (*Board, error) {
	if rng == nil {
		rng = rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
	}
	buses := []string{DefaultBus}
	for _, c := range spec.I2C {
		if bus, _, _, err := ParseAt(c.At); err == nil && !slices.Contains(buses, bus) {
			buses = append(buses, bus)
		}
	}
	b := &Board{
		GPIO: NewGPIO(lines...), I2C: NewI2C(buses...), Ports: map[string]string{},
		chips: map[string]*FaultyDevice{}, serial: map[string]*SerialDevice{}, buttons: map[string]ButtonSpec{},
	}
	temps := map[string]*TMP102{}
	for _, c := range spec.I2C {
		bus, addr, at, err := ParseAt(c.At)
		if err != nil {
			return nil, err
		}
		var chip Device
		switch c.Chip {
		case "tmp102":
			t := NewTMP102(c.celsius())
			temps[at] = t
			chip = t
		case "pcf8574":
			x := NewPCF8574()
			for _, p := range c.PulledLow {
				x.PullLow(p, true)
			}
			chip = x
		case "24c02":
			e := NewEEPROM24C02()
			copy(e.Mem[:], c.Data)
			chip = e
		default:
			return nil, fmt.Errorf("sim: %s: %q is not a simulated chip", c.At, c.Chip)
		}
		f := NewFaultyDevice(chip)
		if c.Power != "" {
			if err := b.GPIO.Drive(c.Power, gpio.High); err != nil {
				return nil, fmt.Errorf("sim: chip at %s: power: %w", c.At, err)
			}
			if err := f.PowerFrom(b.GPIO, c.Power); err != nil {
				return nil, fmt.Errorf("sim: chip at %s: power: %w", c.At, err)
			}
		}
		b.chips[at] = f
		b.I2C.Attach(bus, addr, f)
	}
	for _, r := range spec.Rooms {
		_, _, at, err := ParseAt(r.Sensor)
		if err != nil {
			return nil, err
		}
		t := temps[at]
		if t == nil {
			return nil, fmt.Errorf("sim: room sensor %s is not a tmp102", r.Sensor)
		}
		start := spec.chip(at).celsius()
		p := RoomParams{Heat: r.Heat, Loss: r.Loss, Ambient: start}
		if r.Ambient != nil {
			p.Ambient = *r.Ambient
		}
		b.rooms = append(b.rooms, NewRoom(b.GPIO, r.Heater, t, start, p))
	}
	for _, btn := range spec.Buttons {
		if _, err := b.GPIO.Level(btn.Line); err != nil {
			return nil, fmt.Errorf("sim: button: %w", err)
		}
		b.buttons[btn.Line] = btn
	}
	for _, w := range spec.Wires {
		if err := b.GPIO.Wire(w.From, w.To); err != nil {
			return nil, fmt.Errorf("sim: wire %s→%s: %w", w.From, w.To, err)
		}
	}
	for _, s := range spec.Serial {
		d := &SerialDevice{Fault: NewFaultySerial(rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())))}
		path, err := d.open(s)
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("sim: serial device on %s: %w", s.Port, err)
		}
		b.serial[s.Port] = d
		b.ports = append(b.ports, s.Port)
		b.Ports[s.Port] = path
	}
	return b, nil
}

func (c ChipSpec) celsius() float64 {
	if c.Celsius != nil {
		return *c.Celsius
	}
	return 20
}

// chip is the chip spec at the canonical place at.
func (s BoardSpec) chip(at string) ChipSpec {
	for _, c := range s.I2C {
		if _, _, a, err := ParseAt(c.At); err == nil && a == at {
			return c
		}
	}
	return ChipSpec{}
}

// Chip is the chip at bus:address, behind its fault switch.
func (b *Board) Chip(at string) (*FaultyDevice, error) {
	_, _, key, err := ParseAt(at)
	if err != nil {
		return nil, err
	}
	c, ok := b.chips[key]
	if !ok {
		return nil, fmt.Errorf("no chip at %s on the board; list it under the board's i2c", at)
	}
	return c, nil
}

// SerialDevice is the serial device on port.
func (b *Board) SerialDevice(port string) (*SerialDevice, error) {
	d, ok := b.serial[port]
	if !ok {
		return nil, fmt.Errorf("no serial device on port %s; list it under the board's serial", port)
	}
	return d, nil
}

// GPS is the gps on port, or with port "", the board's first gps.
func (b *Board) GPS(port string) (*NMEAGPS, error) {
	if port == "" {
		for _, p := range b.ports {
			if b.serial[p].GPS != nil {
				return b.serial[p].GPS, nil
			}
		}
		return nil, errors.New("no gps on the board; list one under the board's serial")
	}
	d, err := b.SerialDevice(port)
	if err != nil {
		return nil, err
	}
	if d.GPS == nil {
		return nil, fmt.Errorf("the device on port %s is not a gps", port)
	}
	return d.GPS, nil
}

// Press holds a button down for d.
func (b *Board) Press(line string, d time.Duration) error {
	if err := b.Hold(line); err != nil {
		return err
	}
	time.AfterFunc(d, func() { b.GPIO.Release(line) })
	return nil
}

// Hold holds a button down until b.GPIO.Release(line).
func (b *Board) Hold(line string) error {
	btn, ok := b.buttons[line]
	if !ok {
		return fmt.Errorf("no button on line %s; list it under the board's buttons", line)
	}
	return b.GPIO.Drive(line, gpio.Level(!btn.ActiveLow))
}

// Rooms are the board's rooms, in the spec's order.
func (b *Board) Rooms() []*Room { return b.rooms }

// Step advances every room by dt.
func (b *Board) Step(dt time.Duration) {
	for _, r := range b.rooms {
		r.Step(dt)
	}
}

// Run steps the rooms every tick until ctx is done. A board without
// rooms returns at once.
func (b *Board) Run(ctx context.Context, tick time.Duration) {
	if len(b.rooms) == 0 {
		return
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b.Step(tick)
	}
}

// Close closes the board's serial devices.
func (b *Board) Close() error {
	var errs []error
	for _, d := range b.serial {
		if d.close != nil {
			errs = append(errs, d.close())
		}
	}
	return errors.Join(errs...)
}
