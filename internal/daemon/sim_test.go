package daemon

import (
	"context"
	"strings"
	"testing"

	"github.com/tern-iot/tern/boards"
	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/internal/testbound"
)

func TestSimConfigErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"device: ok\nboard: rpi4\nsim: {i2c: [{at: i2c1:0x48, chip: tmp102}]}", `sim: simulated devices need board: sim (board is "rpi4")`},
		{"device: ok\nsim: {i2c: [{at: 0x48, chip: tmp102}]}", `sim.i2c[0].at: "0x48": want bus:address`},
		{"device: ok\nsim: {i2c: [{at: i2c1:0x480, chip: tmp102}]}", "7-bit number"},
		{"device: ok\nsim: {buttons: [{line: GPIO5}]}", "sim.buttons: nobody presses a button"},
		{"device: ok\nsim: {serial: [{port: serial0, device: fax}]}", `sim.serial[0].device: "fax" is not a simulated serial device; use gps or modem`},
		{"device: ok\nsim: {wires: [{from: GPIO5, to: GPIO99}]}", `sim.wires[0].to: the sim board has no line "GPIO99"`},
		{"device: ok\nsim: {i2c: [{at: i2c1:0x48, chip: lm75}]}", `"lm75" is not a simulated chip; use tmp102, pcf8574 or 24c02`},
		{"device: ok\nsim: {i2c: [{at: i2c1:0x48, chip: tmp102}, {at: i2c1:72, chip: tmp102}]}", "sim.i2c[1].at: two chips at i2c1:0x48"},
		{"device: ok\nsim: {i2c: [{at: i2c1:0x20, chip: pcf8574, pulled_low: [8]}]}", "pin 8 does not exist"},
		{"device: ok\nsim: {i2c: [{at: i2c1:0x20, chip: pcf8574, celsius: 3}]}", "only a tmp102 has a temperature"},
		{"device: ok\nsim: {rooms: [{sensor: i2c1:0x48}]}", "sim.rooms[0].heater: required"},
		{"device: ok\nsim: {rooms: [{heater: GPIO99, sensor: i2c1:0x48}]}", `no line "GPIO99"`},
		{"device: ok\nsim: {i2c: [{at: i2c1:0x20, chip: pcf8574}], rooms: [{heater: GPIO17, sensor: i2c1:0x20}]}", "no tmp102 at i2c1:0x20"},
		{"device: ok\nsim: {i2c: [{at: i2c1:0x48, chip: tmp102}], rooms: [{heater: GPIO17, sensor: i2c1:0x48, heat: -1}]}", "must not be negative"},
	} {
		_, err := LoadConfig(writeConfig(t, tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config %q: err = %v, want it to mention %q", tc.body, err, tc.want)
		}
	}
}

// The sim section builds the chips at their addresses with their initial
// values, and a room whose heater line warms the TMP102 it is measured by.
func TestSimHardware(t *testing.T) {
	c, err := LoadConfig(writeConfig(t, `
device: sim-001
board: sim
sim:
  i2c:
    - {at: i2c1:0x48, chip: tmp102, celsius: 18}
    - {at: i2c1:0x20, chip: pcf8574, pulled_low: [3]}
    - {at: i2c1:0x50, chip: 24c02, data: "tern"}
  rooms:
    - {heater: GPIO17, sensor: i2c1:0x48, heat: 20, loss: 0.5}
`))
	if err != nil {
		t.Fatal(err)
	}
	board, err := boards.Lookup("sim")
	if err != nil {
		t.Fatal(err)
	}
	hw, physics, closeBoard, err := hardware(board, c.Sim)
	if err != nil {
		t.Fatal(err)
	}
	defer closeBoard()
	bus, err := hw.I2C.Bus("i2c1")
	if err != nil {
		t.Fatal(err)
	}
	read := func(addr uint16, w []byte, n int) []byte {
		t.Helper()
		r := make([]byte, n)
		if err := bus.Tx(addr, w, r); err != nil {
			t.Fatalf("tx to %#x: %v", addr, err)
		}
		return r
	}
	temp := func() float64 { r := read(0x48, []byte{0}, 2); return sim.TMP102Decode(uint16(r[0])<<8 | uint16(r[1])) }
	if got := temp(); got != 18 {
		t.Errorf("tmp102 reads %v °C, want 18", got)
	}
	if got := read(0x20, nil, 1)[0]; got != 0xF7 {
		t.Errorf("pcf8574 reads %#x, want 0xf7 (pin 3 pulled low)", got)
	}
	if got := string(read(0x50, []byte{0}, 5)); got != "tern\xff" {
		t.Errorf("24c02 reads %q, want tern then erased", got)
	}
	if err := bus.Tx(0x51, nil, make([]byte, 1)); err == nil {
		t.Error("a transaction to an empty address succeeded")
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { physics(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	pin, err := hw.GPIO.Pin("GPIO17")
	if err != nil {
		t.Fatal(err)
	}
	if err := pin.Out(gpio.High); err != nil {
		t.Fatal(err)
	}
	testbound.WaitFor(t, "the heated room to pass 21 °C", func() bool { return temp() > 21 })
	if err := pin.Out(gpio.Low); err != nil {
		t.Fatal(err)
	}
	testbound.WaitFor(t, "the room to cool back under 19 °C", func() bool { return temp() < 19 })
}

func TestSimNeedsOwnHardware(t *testing.T) {
	c := Config{Device: "x", DataDir: t.TempDir(), Sim: sim.BoardSpec{I2C: []sim.ChipSpec{{At: "i2c1:0x48", Chip: "tmp102"}}}}
	err := Run(context.Background(), c, &Hardware{GPIO: sim.NewGPIO()}, nil)
	if err == nil || !strings.Contains(err.Error(), "sim section") {
		t.Fatalf("err = %v, want one naming the sim section", err)
	}
}
