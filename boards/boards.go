package boards

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/tern-iot/tern/hal/gpio"
)

// Board is one kind of board.
type Board struct {
	// Name is tern's short name for the board: "rpi4", "sim".
	Name string
	// Model is the start of what the board reports in
	// /proc/device-tree/model: "Raspberry Pi 4 Model B".
	Model string
	// GPIOChip is the GPIO character device that carries the header's lines:
	// "gpiochip0".
	GPIOChip string
	// GPIOLabel is that chip's label ("pinctrl-rp1"). Kernels have
	// renumbered chips (the Pi 5's header moved between gpiochip4 and
	// gpiochip0), so the label, when known, is what finds the chip.
	GPIOLabel string
	// Header is the pin header, in physical pin order.
	Header []HeaderPin
	// Interfaces are the buses and ports the board offers on its header,
	// and how each is switched on.
	Interfaces []Interface
	// ConfigFile is where the board's firmware settings live
	// ("/boot/firmware/config.txt"); empty if it has none.
	ConfigFile string
}

// Interface is an I2C bus or serial port as the board offers it.
type Interface struct {
	Kind   string `json:"kind"`   // "i2c" or "serial"
	Name   string `json:"name"`   // as grants and modules name it: "i2c1", "serial0"
	Device string `json:"device"` // its device node: "/dev/i2c-1", "/dev/serial0"
	// Enable is the line of ConfigFile that switches it on
	// ("dtparam=i2c_arm=on"); empty if it is always on.
	Enable string `json:"enable,omitempty"`
	// Group is the Unix group whose members may open Device ("i2c").
	Group string `json:"group,omitempty"`
}

// HeaderPin is one pin of a board's header.
type HeaderPin struct {
	// Physical is the pin's number on the header, from 1.
	Physical int `json:"physical"`
	// Name is the GPIO line's name ("GPIO17") or the supply ("3V3", "5V",
	// "GND").
	Name string `json:"name"`
	// Line is the GPIO line number (BCM number on a Pi), -1 for a supply pin.
	Line int `json:"line"`
	// Functions are the pin's usual alternate functions: "I2C1 SDA",
	// "UART0 TXD", "PWM0".
	Functions []string `json:"functions,omitempty"`
}

// IsGPIO reports whether the pin is a GPIO line rather than a supply.
func (p HeaderPin) IsGPIO() bool { return p.Line >= 0 }

// ErrUnknownBoard means no board has the name or model asked for.
var ErrUnknownBoard = errors.New("boards: unknown board")

//go:embed data
var data embed.FS

// registry holds every board, by name. A defect in the embedded data is a
// defect of the build, found by the tests, so loading it panics.
var registry = mustLoad(data)

// Names returns the names of the known boards, sorted.
func Names() []string {
	names := make([]string, 0, len(registry))
	for name := range registry {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Lookup returns the named board. The name is case-insensitive.
func Lookup(name string) (Board, error) {
	b, ok := registry[strings.ToLower(strings.TrimSpace(name))]
	if !ok {
		return Board{}, fmt.Errorf("boards: board %q: %w (known boards: %s)",
			name, ErrUnknownBoard, strings.Join(Names(), ", "))
	}
	return b.clone(), nil
}

// ForModel returns the board whose Model starts the given model string, as
// read from /proc/device-tree/model ("Raspberry Pi 4 Model B Rev 1.4\x00").
// The longest matching Model wins, so a "Pi 3 Model B Plus" is never taken
// for a "Pi 3 Model B".
func ForModel(model string) (Board, error) {
	m := strings.TrimRight(model, "\x00\n\r\t ")
	var best *Board
	for _, b := range registry {
		if strings.HasPrefix(m, b.Model) && (best == nil || len(b.Model) > len(best.Model)) {
			best = &b
		}
	}
	if best == nil {
		return Board{}, fmt.Errorf("boards: model %q: %w (choose a board by name; known boards: %s)",
			m, ErrUnknownBoard, strings.Join(Names(), ", "))
	}
	return best.clone(), nil
}

// Lines returns the names of the board's GPIO lines, in header order.
func (b Board) Lines() []string {
	var names []string
	for _, p := range b.Header {
		if p.IsGPIO() {
			names = append(names, p.Name)
		}
	}
	return names
}

// Line returns the header pin of a GPIO line, named as the board names it
// ("GPIO17"), by its BCM number ("BCM17", "17"), or by its physical pin
// ("pin11", "P1-11"), in any case. A name that is no GPIO line on the
// header, a supply pin included, is an error wrapping gpio.ErrUnknownLine.
func (b Board) Line(name string) (HeaderPin, error) {
	s := strings.ToUpper(strings.TrimSpace(name))
	physical := false
	switch {
	case strings.HasPrefix(s, "GPIO"):
		s = s[len("GPIO"):]
	case strings.HasPrefix(s, "BCM"):
		s = s[len("BCM"):]
	case strings.HasPrefix(s, "PIN"):
		s, physical = s[len("PIN"):], true
	case strings.HasPrefix(s, "P1-"):
		s, physical = s[len("P1-"):], true
	}
	n, ok := number(s)
	if !ok {
		return HeaderPin{}, fmt.Errorf("boards: %s: line %q: %w (name a line like GPIO17, BCM17, 17, pin11 or P1-11)",
			b.Name, name, gpio.ErrUnknownLine)
	}
	if physical {
		if n < 1 || n > len(b.Header) {
			return HeaderPin{}, fmt.Errorf("boards: %s: line %q: %w (the header has pins 1 to %d)",
				b.Name, name, gpio.ErrUnknownLine, len(b.Header))
		}
		p := b.Header[n-1]
		if !p.IsGPIO() {
			return HeaderPin{}, fmt.Errorf("boards: %s: line %q: %w (pin %d is %s, not a GPIO line)",
				b.Name, name, gpio.ErrUnknownLine, n, p.Name)
		}
		return p.clone(), nil
	}
	for _, p := range b.Header {
		if p.Line == n {
			return p.clone(), nil
		}
	}
	return HeaderPin{}, fmt.Errorf("boards: %s: line %q: %w (GPIO%d is not on the header; see Board.Lines)",
		b.Name, name, gpio.ErrUnknownLine, n)
}

// number parses a small decimal number made of digits only (no sign, no
// spaces).
func number(s string) (int, bool) {
	if s == "" || len(s) > 4 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

func (b Board) clone() Board {
	b.Interfaces = slices.Clone(b.Interfaces)
	b.Header = slices.Clone(b.Header)
	for i := range b.Header {
		b.Header[i] = b.Header[i].clone()
	}
	return b
}

func (p HeaderPin) clone() HeaderPin {
	p.Functions = slices.Clone(p.Functions)
	return p
}

// boardFile is the layout of a file under data/boards/.
type boardFile struct {
	Name       string      `json:"name"`
	Model      string      `json:"model"`
	GPIOChip   string      `json:"gpiochip"`
	GPIOLabel  string      `json:"gpiochip_label,omitempty"`
	Header     string      `json:"header"` // a file under data/headers/, without ".json"
	ConfigFile string      `json:"config_file,omitempty"`
	Interfaces []Interface `json:"interfaces,omitempty"`
}

// headerFile is the layout of a file under data/headers/.
type headerFile struct {
	Name  string      `json:"name"`
	About string      `json:"about"`
	Pins  []HeaderPin `json:"pins"`
}

func mustLoad(fsys fs.FS) map[string]Board {
	r, err := load(fsys)
	if err != nil {
		panic(err)
	}
	return r
}

// load reads and checks every board under fsys's data/ directory.
func load(fsys fs.FS) (map[string]Board, error) {
	headers := map[string][]HeaderPin{}
	hfiles, err := fs.Glob(fsys, "data/headers/*.json")
	if err != nil {
		return nil, err
	}
	for _, file := range hfiles {
		var h headerFile
		if err := decode(fsys, file, &h); err != nil {
			return nil, err
		}
		if want := strings.TrimSuffix(path.Base(file), ".json"); h.Name != want {
			return nil, fmt.Errorf("boards: %s: name %q, want %q (the file's name)", file, h.Name, want)
		}
		if err := checkHeader(h.Pins); err != nil {
			return nil, fmt.Errorf("boards: %s: %w", file, err)
		}
		headers[h.Name] = h.Pins
	}

	registry := map[string]Board{}
	bfiles, err := fs.Glob(fsys, "data/boards/*.json")
	if err != nil {
		return nil, err
	}
	for _, file := range bfiles {
		var bf boardFile
		if err := decode(fsys, file, &bf); err != nil {
			return nil, err
		}
		if want := strings.TrimSuffix(path.Base(file), ".json"); bf.Name != want || bf.Name != strings.ToLower(bf.Name) {
			return nil, fmt.Errorf("boards: %s: name %q, want %q (the file's name, in lower case)", file, bf.Name, want)
		}
		if bf.Model == "" || bf.GPIOChip == "" {
			return nil, fmt.Errorf("boards: %s: model and gpiochip are required", file)
		}
		pins, ok := headers[bf.Header]
		if !ok {
			return nil, fmt.Errorf("boards: %s: header %q: no file data/headers/%s.json", file, bf.Header, bf.Header)
		}
		for _, it := range bf.Interfaces {
			if it.Kind != "i2c" && it.Kind != "serial" || it.Name == "" || !strings.HasPrefix(it.Device, "/dev/") {
				return nil, fmt.Errorf("boards: %s: interface %+v: want kind i2c or serial, a name and a /dev/ device", file, it)
			}
		}
		registry[bf.Name] = Board{Name: bf.Name, Model: bf.Model, GPIOChip: bf.GPIOChip, GPIOLabel: bf.GPIOLabel, Header: pins,
			ConfigFile: bf.ConfigFile, Interfaces: slices.Clone(bf.Interfaces)}
	}
	if len(registry) == 0 {
		return nil, errors.New("boards: no board files under data/boards")
	}
	return registry, nil
}

func decode(fsys fs.FS, file string, v any) error {
	b, err := fs.ReadFile(fsys, file)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("boards: %s: %w", file, err)
	}
	if dec.More() {
		return fmt.Errorf("boards: %s: data after the JSON object", file)
	}
	return nil
}

// supplies are the names a pin that is no GPIO line may have.
var supplies = []string{"3V3", "5V", "GND"}

// checkHeader checks a header's internal consistency: pins numbered 1..n in
// order, GPIO pins named after their line, each line once, supply pins named
// as a supply and without functions.
func checkHeader(pins []HeaderPin) error {
	if len(pins) == 0 {
		return errors.New("no pins")
	}
	seen := map[int]int{} // line → physical pin
	for i, p := range pins {
		if p.Physical != i+1 {
			return fmt.Errorf("pin %d: physical %d, want pins numbered from 1 in order", i+1, p.Physical)
		}
		switch {
		case p.Line >= 0:
			if want := "GPIO" + strconv.Itoa(p.Line); p.Name != want {
				return fmt.Errorf("pin %d: name %q, want %q for line %d", p.Physical, p.Name, want, p.Line)
			}
			if other, dup := seen[p.Line]; dup {
				return fmt.Errorf("pin %d: line %d is also on pin %d", p.Physical, p.Line, other)
			}
			seen[p.Line] = p.Physical
		case p.Line == -1:
			if !slices.Contains(supplies, p.Name) {
				return fmt.Errorf("pin %d: name %q, want one of %v for a pin with no line", p.Physical, p.Name, supplies)
			}
			if len(p.Functions) > 0 {
				return fmt.Errorf("pin %d: supply pin %s has functions", p.Physical, p.Name)
			}
		default:
			return fmt.Errorf("pin %d: line %d, want a line number or -1 for a supply", p.Physical, p.Line)
		}
		for j, f := range p.Functions {
			if strings.TrimSpace(f) == "" || slices.Contains(p.Functions[:j], f) {
				return fmt.Errorf("pin %d: function %q is empty or repeated", p.Physical, f)
			}
		}
	}
	return nil
}
