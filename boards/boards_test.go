package boards

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/tern-iot/tern/hal/gpio"
)

// fortyPin are the boards whose header is the Raspberry Pi 40-pin header.
var fortyPin = []string{"rpi4", "sim"}

// TestFortyPinFacts checks the header data against well-known facts of the
// Raspberry Pi 40-pin header (pinout.xyz, the Raspberry Pi documentation).
func TestFortyPinFacts(t *testing.T) {
	for _, name := range fortyPin {
		t.Run(name, func(t *testing.T) {
			b, err := Lookup(name)
			if err != nil {
				t.Fatal(err)
			}
			if len(b.Header) != 40 {
				t.Fatalf("%d header pins, want 40", len(b.Header))
			}
			pin := func(n int) HeaderPin { return b.Header[n-1] }

			for _, c := range []struct {
				physical int
				name     string
				line     int
				function string // one of the pin's functions, "" for none checked
			}{
				{3, "GPIO2", 2, "I2C1 SDA"},
				{5, "GPIO3", 3, "I2C1 SCL"},
				{7, "GPIO4", 4, "GPCLK0"},
				{8, "GPIO14", 14, "UART0 TXD"},
				{10, "GPIO15", 15, "UART0 RXD"},
				{11, "GPIO17", 17, ""},
				{12, "GPIO18", 18, "PWM0"},
				{13, "GPIO27", 27, ""},
				{15, "GPIO22", 22, ""},
				{16, "GPIO23", 23, ""},
				{18, "GPIO24", 24, ""},
				{19, "GPIO10", 10, "SPI0 MOSI"},
				{21, "GPIO9", 9, "SPI0 MISO"},
				{22, "GPIO25", 25, ""},
				{23, "GPIO11", 11, "SPI0 SCLK"},
				{24, "GPIO8", 8, "SPI0 CE0"},
				{26, "GPIO7", 7, "SPI0 CE1"},
				{27, "GPIO0", 0, "ID_SD"},
				{28, "GPIO1", 1, "ID_SC"},
				{29, "GPIO5", 5, ""},
				{31, "GPIO6", 6, ""},
				{32, "GPIO12", 12, "PWM0"},
				{33, "GPIO13", 13, "PWM1"},
				{35, "GPIO19", 19, "PWM1"},
				{36, "GPIO16", 16, ""},
				{37, "GPIO26", 26, ""},
				{38, "GPIO20", 20, ""},
				{40, "GPIO21", 21, ""},
			} {
				p := pin(c.physical)
				if p.Physical != c.physical || p.Name != c.name || p.Line != c.line {
					t.Errorf("pin %d = %+v, want %s (line %d)", c.physical, p, c.name, c.line)
				}
				if c.function != "" && !slices.Contains(p.Functions, c.function) {
					t.Errorf("pin %d (%s): functions %q lack %q", c.physical, p.Name, p.Functions, c.function)
				}
			}

			supplies := map[string][]int{
				"GND": {6, 9, 14, 20, 25, 30, 34, 39},
				"3V3": {1, 17},
				"5V":  {2, 4},
			}
			nsupply := 0
			for sname, nums := range supplies {
				for _, n := range nums {
					if p := pin(n); p.Name != sname || p.Line != -1 || p.IsGPIO() {
						t.Errorf("pin %d = %+v, want %s", n, p, sname)
					}
				}
				nsupply += len(nums)
			}

			// 28 GPIO lines, BCM 0..27, each exactly once; everything else a supply.
			var lines []int
			for _, p := range b.Header {
				if p.IsGPIO() {
					lines = append(lines, p.Line)
				}
			}
			if len(lines)+nsupply != 40 {
				t.Errorf("%d GPIO + %d supply pins, want 40", len(lines), nsupply)
			}
			slices.Sort(lines)
			for i := range 28 {
				if i >= len(lines) || lines[i] != i {
					t.Fatalf("GPIO lines %v, want 0..27 each once", lines)
				}
			}
			if len(lines) != 28 {
				t.Errorf("%d GPIO lines, want 28", len(lines))
			}
			if got := len(b.Lines()); got != 28 {
				t.Errorf("Lines() has %d names, want 28", got)
			}
		})
	}
}

func TestBoards(t *testing.T) {
	if got, want := Names(), []string{"generic", "rpi3bp", "rpi4", "rpi5", "rpizero2w", "rpizerow", "sim"}; !slices.Equal(got, want) {
		t.Errorf("Names() = %q, want %q", got, want)
	}
	for _, c := range []struct{ name, model, chip string }{
		{"rpi4", "Raspberry Pi 4 Model B", "gpiochip0"},
		{"sim", "tern simulated board", "gpiochip0"},
		{"RPi4", "Raspberry Pi 4 Model B", "gpiochip0"},
		{"rpi3bp", "Raspberry Pi 3 Model B Plus", "gpiochip0"},
		{"rpi5", "Raspberry Pi 5", "gpiochip4"}, // the RP1 chip's lines, not the SoC's
		{"rpizero2w", "Raspberry Pi Zero 2 W", "gpiochip0"},
		{"rpizerow", "Raspberry Pi Zero W", "gpiochip0"},
	} {
		b, err := Lookup(c.name)
		if err != nil {
			t.Errorf("Lookup(%q): %v", c.name, err)
			continue
		}
		if b.Name != strings.ToLower(c.name) || b.Model != c.model || b.GPIOChip != c.chip {
			t.Errorf("Lookup(%q) = %s, %q, %s; want %s, %q, %s", c.name, b.Name, b.Model, b.GPIOChip, c.name, c.model, c.chip)
		}
	}
	rpi4, _ := Lookup("rpi4")
	sim, _ := Lookup("sim")
	if !slices.EqualFunc(rpi4.Header, sim.Header, func(a, b HeaderPin) bool {
		return a.Physical == b.Physical && a.Name == b.Name && a.Line == b.Line && slices.Equal(a.Functions, b.Functions)
	}) {
		t.Error("the sim board's header differs from rpi4's")
	}
}

func TestLookupUnknown(t *testing.T) {
	_, err := Lookup("rpi9")
	if !errors.Is(err, ErrUnknownBoard) {
		t.Fatalf("Lookup(rpi9) = %v, want ErrUnknownBoard", err)
	}
	if !strings.Contains(err.Error(), "rpi4, rpi5, rpizero2w, rpizerow, sim") {
		t.Errorf("error %q does not list the known boards", err)
	}
}

// TestLookupCopies checks that a caller changing a Board cannot change the
// registry.
func TestLookupCopies(t *testing.T) {
	b, _ := Lookup("rpi4")
	b.Header[2].Name = "mangled"
	b.Header[2].Functions[0] = "mangled"
	again, _ := Lookup("rpi4")
	if p := again.Header[2]; p.Name != "GPIO2" || p.Functions[0] != "I2C1 SDA" {
		t.Errorf("registry changed through a looked-up Board: %+v", p)
	}
	other, _ := Lookup("sim")
	if p := other.Header[2]; p.Name != "GPIO2" || p.Functions[0] != "I2C1 SDA" {
		t.Errorf("sim changed through rpi4: %+v", p)
	}
}

func TestForModel(t *testing.T) {
	for model, want := range map[string]string{
		"Raspberry Pi 4 Model B Rev 1.4\x00": "rpi4",
		"Raspberry Pi 4 Model B":             "rpi4",
		"tern simulated board":               "sim",
	} {
		b, err := ForModel(model)
		if err != nil || b.Name != want {
			t.Errorf("ForModel(%q) = %s, %v; want %s", model, b.Name, err, want)
		}
	}
	if _, err := ForModel("Raspberry Pi Compute Module 4"); !errors.Is(err, ErrUnknownBoard) {
		t.Errorf("ForModel(CM4) = %v, want ErrUnknownBoard", err)
	}
}

func TestLines(t *testing.T) {
	b, _ := Lookup("rpi4")
	got := b.Lines()
	want := []string{"GPIO2", "GPIO3", "GPIO4", "GPIO14", "GPIO15", "GPIO17", "GPIO18", "GPIO27"}
	if !slices.Equal(got[:len(want)], want) {
		t.Errorf("Lines() starts %q, want %q (header order)", got[:len(want)], want)
	}
	if got[len(got)-1] != "GPIO21" {
		t.Errorf("Lines() ends %q, want GPIO21 (pin 40)", got[len(got)-1])
	}
}

func TestLine(t *testing.T) {
	b, _ := Lookup("rpi4")
	for _, c := range []struct {
		name     string
		physical int // 0: want an error
	}{
		{"GPIO17", 11}, {"gpio17", 11}, {"Gpio17", 11}, {"BCM17", 11}, {"bcm17", 11},
		{"17", 11}, {"pin11", 11}, {"PIN11", 11}, {"P1-11", 11}, {"p1-11", 11}, {" GPIO17 ", 11},
		{"GPIO2", 3}, {"2", 3}, {"pin3", 3}, {"GPIO0", 27}, {"0", 27}, {"GPIO07", 26},
		{"GPIO14", 8}, {"P1-40", 40},
		{"", 0}, {"GPIO", 0}, {"pin", 0}, {"GPIO28", 0}, {"28", 0}, {"-1", 0}, {"+17", 0},
		{"GPIO-1", 0}, {"pin0", 0}, {"pin41", 0}, {"pin1", 0}, {"pin6", 0}, {"P1-2", 0},
		{"GND", 0}, {"3V3", 0}, {"GPIO 17", 0}, {"GPIO17x", 0}, {"99999999999999999999", 0},
		{"P2-11", 0},
	} {
		p, err := b.Line(c.name)
		switch {
		case c.physical == 0 && err == nil:
			t.Errorf("Line(%q) = %+v, want an error", c.name, p)
		case c.physical == 0 && !errors.Is(err, gpio.ErrUnknownLine):
			t.Errorf("Line(%q) error %v does not wrap gpio.ErrUnknownLine", c.name, err)
		case c.physical != 0 && err != nil:
			t.Errorf("Line(%q): %v", c.name, err)
		case c.physical != 0 && p.Physical != c.physical:
			t.Errorf("Line(%q) = pin %d, want pin %d", c.name, p.Physical, c.physical)
		}
	}
}

func TestLineErrors(t *testing.T) {
	b, _ := Lookup("rpi4")
	for name, want := range map[string]string{
		"pin6":   `boards: rpi4: line "pin6": gpio: no such line (pin 6 is GND, not a GPIO line)`,
		"pin41":  `boards: rpi4: line "pin41": gpio: no such line (the header has pins 1 to 40)`,
		"GPIO28": `boards: rpi4: line "GPIO28": gpio: no such line (GPIO28 is not on the header; see Board.Lines)`,
		"relay":  `boards: rpi4: line "relay": gpio: no such line (name a line like GPIO17, BCM17, 17, pin11 or P1-11)`,
	} {
		if _, err := b.Line(name); fmt.Sprint(err) != want {
			t.Errorf("Line(%q) error:\n got %v\nwant %s", name, err, want)
		}
	}
}

// TestLineEveryPin checks that every GPIO pin is found by each of its names.
func TestLineEveryPin(t *testing.T) {
	for _, name := range Names() {
		b, _ := Lookup(name)
		for _, p := range b.Header {
			if !p.IsGPIO() {
				continue
			}
			for _, n := range []string{p.Name, fmt.Sprint("BCM", p.Line), fmt.Sprint(p.Line), fmt.Sprint("pin", p.Physical), fmt.Sprint("P1-", p.Physical)} {
				if got, err := b.Line(n); err != nil || got.Physical != p.Physical {
					t.Errorf("%s: Line(%q) = pin %d, %v; want pin %d", name, n, got.Physical, err, p.Physical)
				}
			}
		}
	}
}

func FuzzLine(f *testing.F) {
	for _, s := range []string{"GPIO17", "bcm2", "17", "pin11", "P1-40", "pin1", "GND", "", "GPIO99999"} {
		f.Add(s)
	}
	b, _ := Lookup("rpi4")
	f.Fuzz(func(t *testing.T, name string) {
		p, err := b.Line(name)
		if err != nil {
			if !errors.Is(err, gpio.ErrUnknownLine) {
				t.Fatalf("Line(%q) error %v does not wrap gpio.ErrUnknownLine", name, err)
			}
			return
		}
		if !p.IsGPIO() || b.Header[p.Physical-1].Name != p.Name {
			t.Fatalf("Line(%q) = %+v, not a GPIO pin of the header", name, p)
		}
		// Its canonical name finds the same pin.
		if q, err := b.Line(p.Name); err != nil || q.Physical != p.Physical {
			t.Fatalf("Line(%q) = %+v but Line(%q) = %+v, %v", name, p, p.Name, q, err)
		}
	})
}

// TestLoadRejects checks that the loader refuses broken data files, so a
// mistake in a new board file fails the build's tests, not a device.
func TestLoadRejects(t *testing.T) {
	const okHeader = `{"name": "h", "pins": [{"physical": 1, "name": "3V3", "line": -1}, {"physical": 2, "name": "GPIO4", "line": 4}]}`
	const okBoard = `{"name": "b", "model": "M", "gpiochip": "gpiochip0", "header": "h"}`
	fsys := func(header, board string) fstest.MapFS {
		return fstest.MapFS{
			"data/headers/h.json": {Data: []byte(header)},
			"data/boards/b.json":  {Data: []byte(board)},
		}
	}
	if r, err := load(fsys(okHeader, okBoard)); err != nil || len(r["b"].Header) != 2 {
		t.Fatalf("load(good data) = %v, %v", r, err)
	}
	for name, bad := range map[string]fstest.MapFS{
		"no boards":         {"data/headers/h.json": {Data: []byte(okHeader)}},
		"unknown field":     fsys(okHeader, `{"name": "b", "model": "M", "gpiochip": "gpiochip0", "header": "h", "colour": "red"}`),
		"trailing data":     fsys(okHeader, okBoard+`{}`),
		"bad JSON":          fsys(okHeader, `{"name": `),
		"name not file":     fsys(okHeader, `{"name": "c", "model": "M", "gpiochip": "gpiochip0", "header": "h"}`),
		"no model":          fsys(okHeader, `{"name": "b", "gpiochip": "gpiochip0", "header": "h"}`),
		"no chip":           fsys(okHeader, `{"name": "b", "model": "M", "header": "h"}`),
		"unknown header":    fsys(okHeader, `{"name": "b", "model": "M", "gpiochip": "gpiochip0", "header": "x"}`),
		"header name":       fsys(`{"name": "x", "pins": [{"physical": 1, "name": "GND", "line": -1}]}`, okBoard),
		"no pins":           fsys(`{"name": "h", "pins": []}`, okBoard),
		"pins out of order": fsys(`{"name": "h", "pins": [{"physical": 2, "name": "GND", "line": -1}]}`, okBoard),
		"name not line":     fsys(`{"name": "h", "pins": [{"physical": 1, "name": "GPIO5", "line": 4}]}`, okBoard),
		"line twice":        fsys(`{"name": "h", "pins": [{"physical": 1, "name": "GPIO4", "line": 4}, {"physical": 2, "name": "GPIO4", "line": 4}]}`, okBoard),
		"bad supply":        fsys(`{"name": "h", "pins": [{"physical": 1, "name": "12V", "line": -1}]}`, okBoard),
		"supply function":   fsys(`{"name": "h", "pins": [{"physical": 1, "name": "GND", "line": -1, "functions": ["PWM0"]}]}`, okBoard),
		"bad line":          fsys(`{"name": "h", "pins": [{"physical": 1, "name": "GND", "line": -2}]}`, okBoard),
		"repeated function": fsys(`{"name": "h", "pins": [{"physical": 1, "name": "GPIO4", "line": 4, "functions": ["PWM0", "PWM0"]}]}`, okBoard),
		"empty function":    fsys(`{"name": "h", "pins": [{"physical": 1, "name": "GPIO4", "line": 4, "functions": [" "]}]}`, okBoard),
	} {
		if _, err := load(bad); err == nil {
			t.Errorf("load(%s) succeeded, want an error", name)
		}
	}
}

// Models as the kernels of these boards report them in
// /proc/device-tree/model (with the trailing NUL).
func TestForModelPis(t *testing.T) {
	for model, want := range map[string]string{
		"Raspberry Pi 3 Model B Plus Rev 1.3\x00": "rpi3bp",
		"Raspberry Pi 4 Model B Rev 1.5\x00":      "rpi4",
		"Raspberry Pi 5 Model B Rev 1.0\x00":      "rpi5",
		"Raspberry Pi Zero 2 W Rev 1.0\x00":       "rpizero2w",
		"Raspberry Pi Zero W Rev 1.1\x00":         "rpizerow",
	} {
		b, err := ForModel(model)
		if err != nil || b.Name != want {
			t.Errorf("ForModel(%q) = %s, %v; want %s", model, b.Name, err, want)
		}
		if len(b.Interfaces) != 2 || b.Interfaces[0].Enable != "dtparam=i2c_arm=on" || b.ConfigFile != "/boot/firmware/config.txt" {
			t.Errorf("%s: interfaces %+v, config file %q", want, b.Interfaces, b.ConfigFile)
		}
	}
}
