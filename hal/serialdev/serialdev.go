package serialdev

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	bugst "go.bug.st/serial"

	"github.com/tern-iot/tern/hal/serial"
)

// Opener opens serial ports. Devices maps the board's port names to device
// paths; a name that is a path under /dev/ is opened as it is.
type Opener struct {
	Devices map[string]string
}

// Open implements serial.Opener.
func (o Opener) Open(name string, mode serial.Mode) (serial.Port, error) {
	dev, ok := o.Devices[name]
	if !ok && strings.HasPrefix(name, "/dev/") {
		dev, ok = name, true
	}
	if !ok {
		return nil, fmt.Errorf("serialdev: port %q: %w (the board has: %s)", name, serial.ErrUnknownPort, names(o.Devices))
	}
	if _, err := os.Stat(dev); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("serialdev: port %q: %s is missing: %w (is the UART enabled? see ternd doctor)", name, dev, serial.ErrUnknownPort)
	}
	// The kernel's exclusive mode (TIOCEXCL, which go.bug.st/serial sets)
	// does not stop root; ternd keeps its own record of what it has open.
	if !claim(dev) {
		return nil, fmt.Errorf("serialdev: port %q: %w", name, serial.ErrBusy)
	}
	p, err := bugst.Open(dev, &bugst.Mode{BaudRate: mode.Baud})
	if err != nil {
		release(dev)
		var pe *bugst.PortError
		if errors.As(err, &pe) && pe.Code() == bugst.PortBusy {
			return nil, fmt.Errorf("serialdev: port %q: %w", name, serial.ErrBusy)
		}
		return nil, fmt.Errorf("serialdev: port %q (%s): %w", name, dev, err)
	}
	// What arrived while the port was closed is stale (serial.Opener).
	if err := p.ResetInputBuffer(); err != nil {
		p.Close()
		release(dev)
		return nil, fmt.Errorf("serialdev: port %q (%s): discarding stale input: %w", name, dev, err)
	}
	return &port{p: p, dev: dev}, nil
}

var (
	openMu sync.Mutex
	open   = map[string]bool{}
)

func claim(dev string) bool {
	openMu.Lock()
	defer openMu.Unlock()
	if open[dev] {
		return false
	}
	open[dev] = true
	return true
}

func release(dev string) {
	openMu.Lock()
	delete(open, dev)
	openMu.Unlock()
}

func names(m map[string]string) string {
	var s []string
	for k := range m {
		s = append(s, k)
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

type port struct {
	p      bugst.Port
	dev    string
	closed sync.Once
}

func (p *port) Read(b []byte, timeout time.Duration) (int, error) {
	if err := p.p.SetReadTimeout(timeout); err != nil {
		return 0, err
	}
	return p.p.Read(b)
}

func (p *port) Write(b []byte) (int, error) { return p.p.Write(b) }

func (p *port) Close() error {
	err := p.p.Close()
	p.closed.Do(func() { release(p.dev) })
	return err
}
