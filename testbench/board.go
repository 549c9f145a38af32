package testbench

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tern-iot/tern/boards"
	"github.com/tern-iot/tern/hal/serialdev"
	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/internal/daemon"
)

// Board is a simulated board and the world wired to it (a sim.Board:
// GPIO lines, I2C chips behind their fault switches, serial devices on
// pseudo-terminals, rooms), with its network link and its wall clock. The
// testbench acts on it from outside, as the world and the faults do.
type Board struct {
	*sim.Board
	Link  *Link
	Clock *Clock

	pressMu  sync.Mutex
	released time.Time // by Clock, when the last press (Press) ended
}

// Press holds a button down for d, and records when it let go, by the
// board's clock (Released): a busy sensor clears then.
func (b *Board) Press(line string, d time.Duration) error {
	if err := b.Hold(line); err != nil {
		return err
	}
	time.AfterFunc(d, func() {
		b.pressMu.Lock()
		defer b.pressMu.Unlock()
		b.GPIO.Release(line)
		b.released = b.Clock.Now()
	})
	return nil
}

// Released is when the last press ended, by the board's clock (zero: no
// press ended).
func (b *Board) Released() time.Time {
	b.pressMu.Lock()
	defer b.pressMu.Unlock()
	return b.released
}

func newBoard(spec AgentSpec, rng *rand.Rand) (*Board, error) {
	def, err := boards.Lookup("sim")
	if err != nil {
		return nil, err
	}
	b, err := sim.NewBoard(spec.Board, def.Lines(), rng)
	if err != nil {
		return nil, err
	}
	return &Board{Board: b, Link: &Link{}, Clock: &Clock{}}, nil
}

func (b *Board) hardware() *daemon.Hardware {
	return &daemon.Hardware{GPIO: b.GPIO, I2C: b.I2C, Serial: serialdev.Opener{Devices: b.Ports}, Dial: b.Link.Dial, Clock: b.Clock.Now, ClockSynced: b.Clock.Synced}
}

// Temperature is the first room's temperature, or false without a room.
func (b *Board) Temperature() (float64, bool) {
	if len(b.Rooms()) == 0 {
		return 0, false
	}
	return b.Rooms()[0].Temp(), true
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
type Clock struct {
	offset   atomic.Int64
	unsynced atomic.Bool
}

// Synced reports whether the clock counts as synchronised (NTP): until
// the clock_unsynced fault, it does.
func (c *Clock) Synced() bool { return !c.unsynced.Load() }

// SetSynced makes the clock count as synchronised or not.
func (c *Clock) SetSynced(ok bool) { c.unsynced.Store(!ok) }

// Now is the board's time.
func (c *Clock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Jump moves the clock by d (back when negative).
func (c *Clock) Jump(d time.Duration) { c.offset.Add(int64(d)) }
