//go:build linux

package sim

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// PTY is a pseudo-terminal: the real serial backend opens Path, and a
// simulated device answers on the other end, as a USB-serial GPS or modem
// would on a real port.
type PTY struct {
	Path   string
	master *os.File
	wg     sync.WaitGroup
	mu     sync.Mutex
	closed bool
}

// NewPTY opens a pseudo-terminal pair.
func NewPTY() (*PTY, error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("sim: pty: %w (this needs /dev/ptmx)", err)
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, fmt.Errorf("sim: pty: unlock: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("sim: pty: number: %w", err)
	}
	// Raw mode on the device's side too: no echo, no line editing.
	if t, err := unix.IoctlGetTermios(fd, unix.TCGETS); err == nil {
		t.Lflag &^= unix.ECHO | unix.ICANON | unix.ISIG | unix.IEXTEN
		t.Iflag &^= unix.ICRNL | unix.IXON
		t.Oflag &^= unix.OPOST
		unix.IoctlSetTermios(fd, unix.TCSETS, t)
	}
	return &PTY{Path: "/dev/pts/" + strconv.Itoa(n), master: m}, nil
}

// Serve answers what the port's user writes with dev, until Close.
func (p *PTY) Serve(dev Responder) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		buf := make([]byte, 512)
		for {
			n, err := p.master.Read(buf)
			if err != nil {
				return
			}
			if out := dev(buf[:n]); len(out) > 0 {
				p.master.Write(out)
			}
		}
	}()
}

// Emit writes what next returns every interval, until Close: a device that
// talks unasked, like a GPS.
func (p *PTY) Emit(interval time.Duration, next func() []byte) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for range t.C {
			p.mu.Lock()
			closed := p.closed
			p.mu.Unlock()
			if closed {
				return
			}
			if _, err := p.master.Write(next()); err != nil {
				return
			}
		}
	}()
}

// Close stops the device and closes the pair.
func (p *PTY) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.master.Close()
	p.wg.Wait()
	return err
}
