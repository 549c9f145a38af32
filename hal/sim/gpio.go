package sim

import (
	"fmt"
	"sync"
	"time"

	"github.com/tern-iot/tern/hal/gpio"
)

// GPIO is a set of simulated GPIO lines. It implements gpio.Lookup and
// io.Closer; its Pins implement gpio.Pin. The zero value has no lines; use
// NewGPIO.
type GPIO struct {
	mu     sync.Mutex
	closed bool
	lines  map[string]*line
}

var _ gpio.Lookup = (*GPIO)(nil)

// line is one simulated line's state, guarded by GPIO.mu.
type line struct {
	pin    Pin           // handed out by GPIO.Pin, so every lookup gets the same one
	output bool          // direction: output if true
	drive  gpio.Level    // the level driven, when an output
	pull   gpio.Pull     // the pull, when an input
	extOn  bool          // something outside drives the line
	ext    gpio.Level    // what it drives
	writes int           // Out calls
	edge   chan struct{} // closed when the level changes; made by the first waiter after
	wired  []string      // lines this one drives (Wire)
	watch  []func(gpio.Level)
}

// level is what the line is at; the caller holds GPIO.mu.
func (l *line) level() gpio.Level {
	switch {
	case l.output:
		return l.drive
	case l.extOn:
		return l.ext
	default:
		return l.pull == gpio.PullUp // PullDown and floating read Low
	}
}

// NewGPIO returns simulated lines with the given names, each an input with
// gpio.PullNone and nothing driving it. A repeated name makes one line.
func NewGPIO(names ...string) *GPIO {
	g := &GPIO{lines: make(map[string]*line, len(names))}
	for _, name := range names {
		if _, ok := g.lines[name]; !ok {
			g.lines[name] = &line{pin: Pin{g: g, name: name}}
		}
	}
	return g
}

// Pin returns the named line. The same line always gives the same *Pin.
func (g *GPIO) Pin(name string) (gpio.Pin, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	l, err := g.use(name)
	if err != nil {
		return nil, err
	}
	return &l.pin, nil
}

// Close closes the lines to the agent: Pin and every Pin method then fail
// with gpio.ErrClosed. The outside world stays: Drive, Release, Level and
// Writes keep working. Closing again does nothing.
func (g *GPIO) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	return nil
}

// SimulatesPulls reports true: an input that nothing drives reads its pull
// level. It makes gpiotest.Conformance check pulls.
func (g *GPIO) SimulatesPulls() bool { return true }

// Drive puts an external signal at level l on the named line, as a switch or
// another device wired to it would. An input reads it (whatever its pull);
// an output keeps reading the level it drives. It lasts until Release.
func (g *GPIO) Drive(name string, l gpio.Level) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	ln, err := g.find(name)
	if err != nil {
		return err
	}
	before := ln.level()
	ln.extOn, ln.ext = true, l
	g.settle(ln, before)
	return nil
}

// Wire connects line from to line to, as a jumper wire would: whatever
// level from is at, to is driven to.
func (g *GPIO) Wire(from, to string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	src, err := g.find(from)
	if err != nil {
		return err
	}
	dst, err := g.find(to)
	if err != nil {
		return err
	}
	src.wired = append(src.wired, to)
	before := dst.level()
	dst.extOn, dst.ext = true, src.level()
	g.settle(dst, before)
	return nil
}

// Watch calls fn with the named line's new level every time the level
// changes, as a device powered or clocked from the line would see it. fn
// runs with the GPIO locked: it must not call the GPIO's methods.
func (g *GPIO) Watch(name string, fn func(gpio.Level)) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	ln, err := g.find(name)
	if err != nil {
		return err
	}
	ln.watch = append(ln.watch, fn)
	return nil
}

// settle signals an edge on ln if its level left before, and carries the
// new level down its wires; the caller holds g.mu.
func (g *GPIO) settle(ln *line, before gpio.Level) {
	now := ln.level()
	if now == before {
		return
	}
	if ln.edge != nil { // a line nobody waits on changes without allocating
		close(ln.edge)
		ln.edge = nil
	}
	for _, fn := range ln.watch {
		fn(now)
	}
	for _, name := range ln.wired {
		dst := g.lines[name]
		b := dst.level()
		dst.extOn, dst.ext = true, now
		g.settle(dst, b)
	}
}

// Release removes the external signal from the named line, as unplugging
// the wire would: an input reads its pull level again.
func (g *GPIO) Release(name string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	ln, err := g.find(name)
	if err != nil {
		return err
	}
	before := ln.level()
	ln.extOn = false
	g.settle(ln, before)
	return nil
}

// Level returns the level the named line is at, as a probe would see it:
// the same as the agent's Read, but never affected by Close.
func (g *GPIO) Level(name string) (gpio.Level, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ln, err := g.find(name)
	if err != nil {
		return gpio.Low, err
	}
	return ln.level(), nil
}

// Writes returns how many times Out was called on the named line,
// successfully, since NewGPIO. For a name the GPIO does not have it returns
// -1, so a misspelt name never passes for an untouched line.
func (g *GPIO) Writes(name string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	ln, ok := g.lines[name]
	if !ok {
		return -1
	}
	return ln.writes
}

// find returns the named line for the outside world; the caller holds g.mu.
func (g *GPIO) find(name string) (*line, error) {
	ln, ok := g.lines[name]
	if !ok {
		return nil, fmt.Errorf("sim: line %q: %w", name, gpio.ErrUnknownLine)
	}
	return ln, nil
}

// use returns the named line for the agent, refusing once closed; the caller
// holds g.mu.
func (g *GPIO) use(name string) (*line, error) {
	if g.closed {
		return nil, fmt.Errorf("sim: line %q: %w", name, gpio.ErrClosed)
	}
	return g.find(name)
}

// Pin is one simulated line, as the agent sees it. It implements gpio.Pin.
type Pin struct {
	g    *GPIO
	name string
}

var _ gpio.Pin = (*Pin)(nil)

// Name returns the line's name.
func (p *Pin) Name() string { return p.name }

// Read returns the level the line is at (see the package doc).
func (p *Pin) Read() (gpio.Level, error) {
	p.g.mu.Lock()
	defer p.g.mu.Unlock()
	ln, err := p.g.use(p.name)
	if err != nil {
		return gpio.Low, err
	}
	return ln.level(), nil
}

// Out makes the line an output driving l, and counts a write.
func (p *Pin) Out(l gpio.Level) error {
	p.g.mu.Lock()
	defer p.g.mu.Unlock()
	ln, err := p.g.use(p.name)
	if err != nil {
		return err
	}
	before := ln.level()
	ln.output, ln.drive = true, l
	ln.writes++
	p.g.settle(ln, before)
	return nil
}

// In makes the line an input with the pull pl.
func (p *Pin) In(pl gpio.Pull) error {
	switch pl {
	case gpio.PullNone, gpio.PullDown, gpio.PullUp:
	default:
		return fmt.Errorf("sim: line %q: invalid pull %v", p.name, pl)
	}
	p.g.mu.Lock()
	defer p.g.mu.Unlock()
	ln, err := p.g.use(p.name)
	if err != nil {
		return err
	}
	before := ln.level()
	ln.output, ln.pull = false, pl
	p.g.settle(ln, before)
	return nil
}

// WaitForEdge waits up to timeout for the line's level to change.
func (p *Pin) WaitForEdge(timeout time.Duration) (bool, error) {
	p.g.mu.Lock()
	ln, err := p.g.use(p.name)
	if err != nil {
		p.g.mu.Unlock()
		return false, err
	}
	if ln.edge == nil {
		ln.edge = make(chan struct{})
	}
	edge := ln.edge
	p.g.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-edge:
		return true, nil
	case <-t.C:
		return false, nil
	}
}
