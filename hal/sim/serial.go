package sim

import (
	"fmt"
	"sync"
	"time"

	"github.com/tern-iot/tern/hal/serial"
)

// Serial is a set of simulated serial ports, each wired to a device that
// answers what is written to it.
type Serial struct {
	mu    sync.Mutex
	ports map[string]*simPort
}

// Responder is a simulated serial device: given the bytes written to the
// port, it returns the bytes it sends back.
type Responder func(written []byte) []byte

// NewSerial makes an empty set of ports.
func NewSerial() *Serial { return &Serial{ports: map[string]*simPort{}} }

// Connect wires a device to the named port.
func (s *Serial) Connect(name string, dev Responder) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ports[name] = &simPort{dev: dev}
}

// Opens counts how often the named port was opened.
func (s *Serial) Opens(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.ports[name]; p != nil {
		return p.opens
	}
	return 0
}

// Open implements serial.Opener.
func (s *Serial) Open(name string, mode serial.Mode) (serial.Port, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.ports[name]
	if !ok {
		return nil, fmt.Errorf("sim: port %q: %w", name, serial.ErrUnknownPort)
	}
	if p.open {
		return nil, fmt.Errorf("sim: port %q: %w", name, serial.ErrBusy)
	}
	p.open, p.opens, p.pending = true, p.opens+1, nil
	return &openPort{s: s, p: p}, nil
}

type simPort struct {
	dev     Responder
	open    bool
	opens   int
	pending []byte
}

type openPort struct {
	s *Serial
	p *simPort
}

func (o *openPort) Write(b []byte) (int, error) {
	o.s.mu.Lock()
	defer o.s.mu.Unlock()
	o.p.pending = append(o.p.pending, o.p.dev(b)...)
	return len(b), nil
}

func (o *openPort) Read(b []byte, _ time.Duration) (int, error) {
	o.s.mu.Lock()
	defer o.s.mu.Unlock()
	n := copy(b, o.p.pending)
	o.p.pending = o.p.pending[n:]
	return n, nil
}

func (o *openPort) Close() error {
	o.s.mu.Lock()
	defer o.s.mu.Unlock()
	o.p.open = false
	return nil
}
