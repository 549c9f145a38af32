package gpiodev

import (
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/driver/driverreg"
	pgpio "periph.io/x/conn/v3/gpio"
	"periph.io/x/host/v3/gpioioctl"

	"github.com/tern-iot/tern/hal/gpio"
)

// Chip is a GPIO chip's lines, by the board's names.
type Chip struct {
	chip   *gpioioctl.GPIOChip
	lineOf func(name string) (int, error)

	mu   sync.Mutex
	pins map[string]*pin
}

var initOnce = sync.OnceValue(func() error {
	_, err := driverreg.Init()
	return err
})

// Open opens the chip labelled label ("pinctrl-bcm2711") or, with no
// label, named name ("gpiochip0"). lineOf maps a line's name to its number
// on the chip (boards.Board.Line).
func Open(name, label string, lineOf func(string) (int, error)) (*Chip, error) {
	if err := initOnce(); err != nil {
		return nil, fmt.Errorf("gpiodev: %w", err)
	}
	for _, c := range gpioioctl.Chips {
		if label != "" && c.Label() == label || label == "" && c.Name() == name {
			return &Chip{chip: c, lineOf: lineOf, pins: map[string]*pin{}}, nil
		}
	}
	if label != "" {
		return nil, fmt.Errorf("gpiodev: no GPIO chip labelled %s (expected at /dev/%s or another gpiochip): see ternd doctor", label, name)
	}
	return nil, fmt.Errorf("gpiodev: /dev/%s is not there (or not readable): see ternd doctor", name)
}

// Pin implements gpio.Lookup.
func (c *Chip) Pin(name string) (gpio.Pin, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.pins[name]; ok {
		return p, nil
	}
	n, err := c.lineOf(name)
	if err != nil {
		return nil, err
	}
	l := c.chip.ByNumber(n)
	if l == nil {
		return nil, fmt.Errorf("gpiodev: %s has no line %d (%s): %w", c.chip.Name(), n, name, gpio.ErrUnknownLine)
	}
	p := &pin{name: name, line: l}
	c.pins[name] = p
	return p, nil
}

type pin struct {
	name string
	line *gpioioctl.GPIOLine

	mu     sync.Mutex
	output bool
	driven gpio.Level
}

func (p *pin) Name() string { return p.name }

func (p *pin) Read() (gpio.Level, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.output {
		return p.driven, nil
	}
	return gpio.Level(p.line.Read()), nil
}

func (p *pin) Out(l gpio.Level) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.line.Out(pgpio.Level(l)); err != nil {
		return fmt.Errorf("gpiodev: %s: %w", p.name, err)
	}
	p.output, p.driven = true, l
	return nil
}

func (p *pin) In(pull gpio.Pull) error {
	var pp pgpio.Pull
	switch pull {
	case gpio.PullNone:
		pp = pgpio.Float
	case gpio.PullDown:
		pp = pgpio.PullDown
	case gpio.PullUp:
		pp = pgpio.PullUp
	default:
		return fmt.Errorf("gpiodev: %s: unknown pull %v", p.name, pull)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.line.In(pp, pgpio.BothEdges); err != nil {
		return fmt.Errorf("gpiodev: %s: %w", p.name, err)
	}
	p.output = false
	return nil
}

func (p *pin) WaitForEdge(timeout time.Duration) (bool, error) {
	p.mu.Lock()
	out := p.output
	p.mu.Unlock()
	if out {
		return false, fmt.Errorf("gpiodev: %s is an output: edges are watched on inputs", p.name)
	}
	return p.line.WaitForEdge(timeout), nil
}
