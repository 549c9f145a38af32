package sim_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/hal/i2c"
	"github.com/tern-iot/tern/hal/serial"
	"github.com/tern-iot/tern/hal/serialdev"
	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/internal/testbound"
)

var boardLines = []string{"GPIO5", "GPIO6", "GPIO17", "GPIO22", "GPIO27"}

func TestBoardSpecValidate(t *testing.T) {
	c := func(v float64) *float64 { return &v }
	for _, tc := range []struct {
		spec sim.BoardSpec
		want string
	}{
		{sim.BoardSpec{I2C: []sim.ChipSpec{{At: "0x48", Chip: "tmp102"}}}, `i2c[0].at: "0x48": want bus:address`},
		{sim.BoardSpec{I2C: []sim.ChipSpec{{At: "i2c1:0x480", Chip: "tmp102"}}}, "i2c[0].at: \"i2c1:0x480\": the address must be a 7-bit number"},
		{sim.BoardSpec{I2C: []sim.ChipSpec{{At: "i2c1:0x48", Chip: "lm75"}}}, `i2c[0].chip: "lm75" is not a simulated chip; use tmp102, pcf8574 or 24c02`},
		{sim.BoardSpec{I2C: []sim.ChipSpec{{At: "i2c1:0x48", Chip: "tmp102"}, {At: "i2c1:72", Chip: "tmp102"}}}, "i2c[1].at: two chips at i2c1:0x48"},
		{sim.BoardSpec{I2C: []sim.ChipSpec{{At: "i2c1:0x20", Chip: "pcf8574", PulledLow: []int{8}}}}, "i2c[0].pulled_low: pin 8 does not exist"},
		{sim.BoardSpec{I2C: []sim.ChipSpec{{At: "i2c1:0x20", Chip: "pcf8574", Celsius: c(3)}}}, "i2c[0].celsius: only a tmp102 has a temperature"},
		{sim.BoardSpec{I2C: []sim.ChipSpec{{At: "i2c1:0x50", Chip: "24c02", Data: strings.Repeat("x", 257)}}}, "i2c[0].data: 257 bytes; a 24c02 holds 256"},
		{sim.BoardSpec{I2C: []sim.ChipSpec{{At: "i2c1:0x48", Chip: "tmp102", Power: "GPIO99"}}}, `i2c[0].power: the sim board has no line "GPIO99"`},
		{sim.BoardSpec{Rooms: []sim.RoomSpec{{Sensor: "i2c1:0x48"}}}, "rooms[0].heater: required"},
		{sim.BoardSpec{I2C: []sim.ChipSpec{{At: "i2c1:0x20", Chip: "pcf8574"}}, Rooms: []sim.RoomSpec{{Heater: "GPIO17", Sensor: "i2c1:0x20"}}}, "rooms[0].sensor: no tmp102 at i2c1:0x20"},
		{sim.BoardSpec{I2C: []sim.ChipSpec{{At: "i2c1:0x48", Chip: "tmp102"}}, Rooms: []sim.RoomSpec{{Heater: "GPIO17", Sensor: "i2c1:0x48", Loss: -1}}}, "rooms[0]: heat and loss must not be negative"},
		{sim.BoardSpec{Serial: []sim.SerialSpec{{Port: "serial0", Device: "fax"}}}, `serial[0].device: "fax" is not a simulated serial device; use gps or modem`},
		{sim.BoardSpec{Serial: []sim.SerialSpec{{Port: "s", Device: "gps"}, {Port: "s", Device: "modem"}}}, "serial[1].port: two devices on port s"},
		{sim.BoardSpec{Buttons: []sim.ButtonSpec{{Line: "GPIO99"}}}, `buttons[0].line: the sim board has no line "GPIO99"`},
		{sim.BoardSpec{Wires: []sim.WireSpec{{From: "GPIO5", To: "GPIO99"}}}, `wires[0].to: the sim board has no line "GPIO99"`},
	} {
		errs := tc.spec.Validate(boardLines)
		if err := errors.Join(errs...); err == nil || !strings.HasPrefix(err.Error(), tc.want) && !strings.Contains(err.Error(), "\n"+tc.want) {
			t.Errorf("%+v: errors %v, want one starting %q", tc.spec, err, tc.want)
		}
	}
}

// A board built from a spec has every part it lists, wired as listed: a
// chip powered from a line, a room its heater warms, a gps and a modem on
// pseudo-terminals the real serial backend opens, a button and a wire.
func TestBoard(t *testing.T) {
	start, ambient := 18.0, 15.0
	spec := sim.BoardSpec{
		I2C: []sim.ChipSpec{
			{At: "i2c1:0x48", Chip: "tmp102", Celsius: &start, Power: "GPIO22"},
			{At: "i2c2:0x50", Chip: "24c02", Data: "tern"},
		},
		Rooms:   []sim.RoomSpec{{Heater: "GPIO17", Sensor: "i2c1:72", Heat: 10, Ambient: &ambient}},
		Serial:  []sim.SerialSpec{{Port: "modem0", Device: "modem"}, {Port: "gps0", Device: "gps", Lat: 48.5, Lon: 11.25}},
		Buttons: []sim.ButtonSpec{{Line: "GPIO27", ActiveLow: true}},
		Wires:   []sim.WireSpec{{From: "GPIO5", To: "GPIO6"}},
	}
	if errs := spec.Validate(boardLines); len(errs) > 0 {
		t.Fatal(errs)
	}
	b, err := sim.NewBoard(spec, boardLines, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	bus1, err := b.I2C.Bus("i2c1")
	if err != nil {
		t.Fatal(err)
	}
	temp := func() (float64, error) {
		r := make([]byte, 2)
		err := bus1.Tx(0x48, []byte{0}, r)
		return sim.TMP102Decode(uint16(r[0])<<8 | uint16(r[1])), err
	}
	if got, err := temp(); err != nil || got != 18 {
		t.Fatalf("tmp102 reads %v, %v; want 18 °C", got, err)
	}
	bus2, err := b.I2C.Bus("i2c2")
	if err != nil {
		t.Fatalf("the bus a chip names was not made: %v", err)
	}
	mem := make([]byte, 5)
	if err := bus2.Tx(0x50, []byte{0}, mem); err != nil || string(mem) != "tern\xff" {
		t.Errorf("24c02 reads %q, %v; want tern then erased", mem, err)
	}

	// The power line: the board holds it high; the agent switching it
	// low takes the chip off the bus.
	if l, _ := b.GPIO.Level("GPIO22"); l != gpio.High {
		t.Error("the power line is not held high at start")
	}
	pwr, err := b.GPIO.Pin("GPIO22")
	if err != nil {
		t.Fatal(err)
	}
	if err := pwr.Out(gpio.Low); err != nil {
		t.Fatal(err)
	}
	if _, err := temp(); !errors.Is(err, i2c.ErrNoDevice) {
		t.Errorf("unpowered chip: err = %v, want i2c.ErrNoDevice", err)
	}
	if err := pwr.Out(gpio.High); err != nil {
		t.Fatal(err)
	}
	if c, err := b.Chip("i2c1:0x48"); err != nil || c.PowerCycles() != 1 {
		t.Errorf("Chip: %v, %v; want the chip, power-cycled once", c, err)
	}
	if _, err := b.Chip("i2c1:0x49"); err == nil || !strings.Contains(err.Error(), "no chip at i2c1:0x49") {
		t.Errorf("Chip at an empty address: err = %v", err)
	}

	// The room starts at its sensor's celsius and warms with the heater.
	heater, err := b.GPIO.Pin("GPIO17")
	if err != nil {
		t.Fatal(err)
	}
	if err := heater.Out(gpio.High); err != nil {
		t.Fatal(err)
	}
	b.Step(time.Second)
	if got := b.Rooms()[0].Temp(); got != 28 {
		t.Errorf("room after 1 s of heating at 10 °C/s from 18: %v, want 28", got)
	}
	if got, _ := temp(); got != 28 {
		t.Errorf("its sensor reads %v, want 28", got)
	}

	// The wire and the button.
	from, err := b.GPIO.Pin("GPIO5")
	if err != nil {
		t.Fatal(err)
	}
	if err := from.Out(gpio.High); err != nil {
		t.Fatal(err)
	}
	if l, _ := b.GPIO.Level("GPIO6"); l != gpio.High {
		t.Error("the wire did not carry GPIO5's level to GPIO6")
	}
	if err := b.Press("GPIO27", time.Hour); err != nil {
		t.Fatal(err)
	}
	if l, _ := b.GPIO.Level("GPIO27"); l != gpio.Low {
		t.Error("an active-low button pressed does not pull its line low")
	}
	if err := b.Press("GPIO5", time.Millisecond); err == nil {
		t.Error("pressed a line without a button")
	}

	// The serial devices, through the real backend.
	ports := serialdev.Opener{Devices: b.Ports}
	gps, err := ports.Open("gps0", serial.Mode{Baud: 9600})
	if err != nil {
		t.Fatal(err)
	}
	defer gps.Close()
	var got []byte
	buf := make([]byte, 256)
	testbound.WaitFor(t, "an NMEA sentence from the gps", func() bool {
		n, _ := gps.Read(buf, 100*time.Millisecond)
		got = append(got, buf[:n]...)
		return strings.Contains(string(got), "$GPGGA")
	})
	if g, err := b.GPS(""); err != nil || g.Lat != 48.5 {
		t.Errorf("GPS(\"\"): %+v, %v; want the gps on gps0", g, err)
	}
	if _, err := b.GPS("modem0"); err == nil {
		t.Error("GPS on the modem's port: no error")
	}
	modem, err := ports.Open("modem0", serial.Mode{Baud: 115200})
	if err != nil {
		t.Fatal(err)
	}
	defer modem.Close()
	if _, err := modem.Write([]byte("AT\r")); err != nil {
		t.Fatal(err)
	}
	got = nil
	testbound.WaitFor(t, "the modem's OK", func() bool {
		n, _ := modem.Read(buf, 100*time.Millisecond)
		got = append(got, buf[:n]...)
		return strings.Contains(string(got), "OK")
	})
}
