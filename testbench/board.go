package testbench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tern-iot/tern/boards"
	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/internal/daemon"
)

// Board is a simulated board and the world wired to it: its GPIO lines,
// I2C chips (each behind a sim.FaultyDevice), serial devices on
// pseudo-terminals, a room, its network link and its wall clock. The
// testbench acts on it from outside, as the world and the faults do.
type Board struct {
	GPIO  *sim.GPIO
	I2C   *sim.I2C
	Link  *Link
	Clock *Clock

	chips   map[string]*sim.FaultyDevice // by chipKey
	temps   map[string]*sim.TMP102
	serial  map[string]*serialDevice
	buttons map[string]ButtonSpec
	room    *sim.Room
	ports   map[string]string // serial port name → pty path
}

type serialDevice struct {
	fault *sim.FaultySerial
	gps   *sim.NMEAGPS
	close func() error
}

func newBoard(spec AgentSpec, rng *rand.Rand) (*Board, error) {
	def, err := boards.Lookup("sim")
	if err != nil {
		return nil, err
	}
	b := &Board{
		GPIO: sim.NewGPIO(def.Lines()...), I2C: sim.NewI2C(), Link: &Link{}, Clock: &Clock{},
		chips: map[string]*sim.FaultyDevice{}, temps: map[string]*sim.TMP102{},
		serial: map[string]*serialDevice{}, buttons: map[string]ButtonSpec{}, ports: map[string]string{},
	}
	buses := map[string]bool{}
	for _, c := range spec.Board.I2C {
		buses[c.Bus] = true
	}
	names := make([]string, 0, len(buses))
	for n := range buses {
		names = append(names, n)
	}
	b.I2C = sim.NewI2C(append(names, "i2c1")...)
	for _, c := range spec.Board.I2C {
		var chip sim.Device
		switch c.Chip {
		case "tmp102":
			t := sim.NewTMP102(c.Celsius)
			b.temps[chipKey(c.Bus, c.Address)] = t
			chip = t
		case "pcf8574":
			chip = sim.NewPCF8574()
		case "eeprom24c02":
			chip = sim.NewEEPROM24C02()
		}
		f := sim.NewFaultyDevice(chip)
		if c.Power != "" {
			if err := b.GPIO.Drive(c.Power, gpio.High); err != nil {
				return nil, fmt.Errorf("chip %s power: %w", c.Chip, err)
			}
			if err := f.PowerFrom(b.GPIO, c.Power); err != nil {
				return nil, fmt.Errorf("chip %s power: %w", c.Chip, err)
			}
		}
		b.chips[chipKey(c.Bus, c.Address)] = f
		b.I2C.Attach(c.Bus, c.Address, f)
	}
	for _, btn := range spec.Board.Buttons {
		if _, err := b.GPIO.Level(btn.Line); err != nil {
			return nil, fmt.Errorf("button: %w", err)
		}
		b.buttons[btn.Line] = btn
	}
	for _, w := range spec.Board.Wires {
		if err := b.GPIO.Wire(w.From, w.To); err != nil {
			return nil, fmt.Errorf("wire %s→%s: %w", w.From, w.To, err)
		}
	}
	for _, s := range spec.Board.Serial {
		d := &serialDevice{fault: sim.NewFaultySerial(rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())))}
		path, closer, err := openSerial(s, d)
		if err != nil {
			b.Close()
			return nil, err
		}
		d.close = closer
		b.serial[s.Port] = d
		b.ports[s.Port] = path
	}
	if r := spec.Room; r != nil {
		bus, addr, _ := parseChip(r.Sensor)
		t, ok := b.temps[chipKey(bus, addr)]
		if !ok {
			return nil, fmt.Errorf("room: the sensor %s is not a tmp102", r.Sensor)
		}
		b.room = newRoom(*r, b.GPIO, t)
	}
	return b, nil
}

func (b *Board) hardware() *daemon.Hardware {
	return &daemon.Hardware{GPIO: b.GPIO, I2C: b.I2C, Serial: serialOpener(b.ports), Dial: b.Link.Dial, Clock: b.Clock.Now}
}

// Chip is the chip at "bus:address".
func (b *Board) Chip(ref string) (*sim.FaultyDevice, error) {
	bus, addr, err := parseChip(ref)
	if err != nil {
		return nil, err
	}
	c, ok := b.chips[chipKey(bus, addr)]
	if !ok {
		return nil, fmt.Errorf("no chip at %s on the board; add it under board.i2c", ref)
	}
	return c, nil
}

func (b *Board) serialDevice(port string) (*serialDevice, error) {
	d, ok := b.serial[port]
	if !ok {
		return nil, fmt.Errorf("no serial device on port %s; add it under board.serial", port)
	}
	return d, nil
}

// press holds a button down for d.
func (b *Board) press(line string, d time.Duration) error {
	btn, ok := b.buttons[line]
	if !ok {
		return fmt.Errorf("no button on line %s; add it under board.buttons", line)
	}
	if err := b.GPIO.Drive(line, gpio.Level(!btn.ActiveLow)); err != nil {
		return err
	}
	time.AfterFunc(d, func() { b.GPIO.Release(line) })
	return nil
}

// Temperature is the room's temperature, or false without a room.
func (b *Board) Temperature() (float64, bool) {
	if b.room == nil {
		return 0, false
	}
	return b.room.Temp(), true
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

// newRoom is spec's room read by sensor: a sim.Room with the scenario
// defaults (heat 1 °C/s, loss 0.1 per second).
func newRoom(spec RoomSpec, lines *sim.GPIO, sensor *sim.TMP102) *sim.Room {
	if spec.Loss == 0 {
		spec.Loss = 0.1
	}
	return sim.NewRoom(lines, spec.Heater, sensor, spec.Start, sim.RoomParams{Heat: spec.Heat, Loss: spec.Loss, Ambient: spec.Ambient})
}

// Link is a board's network as the agent's broker connection uses it
// (daemon.Hardware.Dial): Cut drops the open connections and refuses new
// ones until Restore, as a pulled cable or a dead Wi-Fi does.
type Link struct {
	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
}

// ErrNetworkCut is what dialling through a cut Link returns.
var ErrNetworkCut = errors.New("testbench: network cut (injected fault)")

// Dial connects as a net.Dialer does, unless the link is cut.
func (l *Link) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	l.mu.Lock()
	cut := l.cut
	l.mu.Unlock()
	if cut {
		return nil, ErrNetworkCut
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut {
		c.Close()
		return nil, ErrNetworkCut
	}
	if l.conns == nil {
		l.conns = map[net.Conn]struct{}{}
	}
	tc := &trackedConn{Conn: c, l: l}
	l.conns[tc] = struct{}{}
	return tc, nil
}

// Cut drops every connection and refuses new ones.
func (l *Link) Cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut = true
	for c := range l.conns {
		tc := c.(*trackedConn)
		tc.isCut.Store(true)
		tc.Conn.Close()
	}
	l.conns = nil
}

// Restore lets connections through again.
func (l *Link) Restore() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut = false
}

type trackedConn struct {
	net.Conn
	l     *Link
	isCut atomic.Bool
}

// Read and Write report a cut as the peer resetting the connection: a
// connection closed locally reads as closed on purpose, which MQTT
// clients do not take for a lost connection.
func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && c.isCut.Load() {
		return n, syscall.ECONNRESET
	}
	return n, err
}

func (c *trackedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil && c.isCut.Load() {
		return n, syscall.ECONNRESET
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// Clock is a board's wall clock: the real time plus an offset that Jump
// moves, as an RTC that was wrong until NTP corrected it.
type Clock struct{ offset atomic.Int64 }

// Now is the board's time.
func (c *Clock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Jump moves the clock by d (back when negative).
func (c *Clock) Jump(d time.Duration) { c.offset.Add(int64(d)) }
