//go:build !wasip1

package sdktest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/hal/i2c"
	"github.com/tern-iot/tern/hal/serial"
	"github.com/tern-iot/tern/runtime/state"
	"github.com/tern-iot/tern/sdk"
	"github.com/tern-iot/tern/sdk/abi"
	"github.com/tern-iot/tern/sdk/internal/native"
)

// Board is the hardware the module reaches: hal implementations, usually
// hal/sim's. A nil field is a board without that kind of resource: calls
// to it fail with sdk.ErrnoNoLine, as under ternd.
type Board struct {
	GPIO   gpio.Lookup
	I2C    i2c.Lookup
	Serial serial.Opener
}

// Module is the module of this test binary, run as ternd runs it: each
// call is encoded in the call format, dispatched through the SDK's own
// entry point and its answer decoded, and its hardware calls reach the
// Board, refused while planning (Try) as ternd refuses them. Grants are
// not checked: every resource of the board is the module's.
type Module struct {
	mu    sync.Mutex // one call at a time, as in one instance
	board Board
	man   sdk.Manifest
	state any // the device's state, for Call.Current and Context.Read
	phase string
	ports map[int32]serial.Port
	next  int32
	logs  []string
	done  bool // closed
}

// one is the module under test: the SDK has one registry per process.
var one sync.Mutex

// New configures the module of this test binary with config (encoded as
// JSON; nil for none), as ternd does from ternd.yaml, and returns it, to
// run on board. Only one Module may be in use at a time in a process:
// Close the previous one first.
func New(board Board, config any) (*Module, error) {
	b, err := json.Marshal(config)
	if err != nil {
		return nil, fmt.Errorf("sdktest: the module's config does not encode as JSON: %w", err)
	}
	man := sdk.Describe()
	if err := man.Validate(); err != nil {
		return nil, fmt.Errorf("sdktest: the module's manifest: %w", err)
	}
	if !one.TryLock() {
		return nil, errors.New("sdktest: a Module is in use already: Close it first (the SDK has one module per process)")
	}
	m := &Module{board: board, man: man, ports: map[int32]serial.Port{}}
	native.Use(m.host())
	sdk.Configure(json.RawMessage(b))
	return m, nil
}

// Close lets another Module be made; the module's serial ports are closed.
// Closing again does nothing.
func (m *Module) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done {
		return nil
	}
	m.done = true
	for h, p := range m.ports {
		p.Close()
		delete(m.ports, h)
	}
	native.Use(nil)
	one.Unlock()
	return nil
}

// Manifest is what the module declares (tern_describe).
func (m *Module) Manifest() sdk.Manifest { return m.man }

// SetState sets the device's state (a JSON document, e.g. a
// map[string]any, or a value that encodes as one): calls get their path's
// value from it as Call.Current, and Context.Read reads it.
func (m *Module) SetState(doc any) error {
	b, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("sdktest: the state does not encode as JSON: %w", err)
	}
	v, err := state.Parse(b)
	if err != nil {
		return fmt.Errorf("sdktest: the state: %w", err)
	}
	m.mu.Lock()
	m.state = v
	m.mu.Unlock()
	return nil
}

// Logs returns what the module logged so far (sdk.Logf), one line each.
func (m *Module) Logs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.logs...)
}

// Try asks job whether it applies at path for target, as the planner
// does: its condition and its effect (an action) or expansion (a method).
// target is the target's value at path (nil: a delete). Hardware calls
// fail with sdk.ErrnoPlanning.
func (m *Module) Try(job, path string, target any) (abi.Try, error) {
	out, err := m.call("try", job, path, target)
	if err != nil {
		return abi.Try{}, err
	}
	t, modErr, err := abi.DecodeTry(out)
	if err != nil {
		return abi.Try{}, fmt.Errorf("sdktest: the module's answer to try: %w", err)
	}
	return t, modErr
}

// Run runs job at path for target, as the agent runs a task: with the
// board's hardware.
func (m *Module) Run(job, path string, target any) error {
	out, err := m.call("run", job, path, target)
	if err != nil {
		return err
	}
	_, modErr, err := abi.DecodeValue(out)
	if err != nil {
		return fmt.Errorf("sdktest: the module's answer to run: %w", err)
	}
	return modErr
}

// Command runs the command named with args as a fleet job runs it: with
// the board's hardware, args as the call's target. It returns the
// command's result (JSON; null for none).
func (m *Module) Command(name string, args any) (json.RawMessage, error) {
	out, err := m.call("run", name, "", args)
	if err != nil {
		return nil, err
	}
	v, modErr, err := abi.DecodeValue(out)
	if err != nil {
		return nil, fmt.Errorf("sdktest: the module's answer to command %s: %w", name, err)
	}
	return v, modErr
}

// Sense runs the sensor named and returns the value it read (JSON).
func (m *Module) Sense(sensor string) (json.RawMessage, error) {
	out, err := m.call("sense", sensor, "", nil)
	if err != nil {
		return nil, err
	}
	v, modErr, err := abi.DecodeValue(out)
	if err != nil {
		return nil, fmt.Errorf("sdktest: the module's answer to sense: %w", err)
	}
	return v, modErr
}

// call encodes one call of export, dispatches it and returns the raw
// answer.
func (m *Module) call(export, name, path string, target any) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := sdk.Call{Job: name, Path: path}
	index := -1
	if export == "sense" {
		for i, s := range m.man.Sensors {
			if s.Name == name {
				index, c.Path = i, s.Path
			}
		}
		if index < 0 {
			return nil, fmt.Errorf("sdktest: the module has no sensor %q", name)
		}
	} else {
		for i, j := range m.man.Jobs {
			if j.Name == name && j.IsCommand() {
				index = i // no path: the target is the arguments
			} else if j.Name == name {
				index = i
				pat, err := state.ParsePattern(j.Path)
				if err != nil {
					return nil, fmt.Errorf("sdktest: job %s: %w", name, err)
				}
				ptr, err := state.ParsePointer(path)
				if err != nil {
					return nil, fmt.Errorf("sdktest: path %q: %w", path, err)
				}
				params, ok := pat.Match(ptr)
				if !ok {
					return nil, fmt.Errorf("sdktest: job %s works on %s, not on %s", name, j.Path, path)
				}
				c.Params = params
				if v, ok := state.Get(m.state, ptr); ok {
					if c.Current, err = json.Marshal(v); err != nil {
						return nil, err
					}
				}
			}
		}
		if index < 0 {
			return nil, fmt.Errorf("sdktest: the module has no job %q", name)
		}
		t, err := json.Marshal(target)
		if err != nil {
			return nil, fmt.Errorf("sdktest: the target does not encode as JSON: %w", err)
		}
		c.Target = t
	}
	m.phase = export
	defer func() { m.phase = "" }()
	return native.Dispatch(export, abi.EncodeCall(nil, index, c), nil), nil
}

// host is the native.Host that reaches m's board. Its functions run
// inside call, which holds m.mu.
func (m *Module) host() *native.Host {
	return &native.Host{
		GPIOWrite: func(line string, high bool) error {
			p, err := m.pin(line)
			if err != nil {
				return err
			}
			return ioErr(p.Out(gpio.Level(high)))
		},
		GPIORead: func(line string) (bool, error) {
			p, err := m.pin(line)
			if err != nil {
				return false, err
			}
			l, err := p.Read()
			return bool(l), ioErr(err)
		},
		GPIOIn: func(line string, pull uint32) error {
			p, err := m.pin(line)
			if err != nil {
				return err
			}
			if pull > 2 {
				return sdk.ErrnoBadArg
			}
			return ioErr(p.In(gpio.Pull(pull)))
		},
		GPIOWaitEdge: func(line string, timeout time.Duration) (bool, error) {
			p, err := m.pin(line)
			if err != nil {
				return false, err
			}
			edge, err := p.WaitForEdge(timeout)
			return edge, ioErr(err)
		},
		I2CTx: func(bus string, addr uint16, w, r []byte) error {
			if err := m.hardware(); err != nil {
				return err
			}
			if m.board.I2C == nil {
				return sdk.ErrnoNoLine
			}
			b, err := m.board.I2C.Bus(bus)
			if err != nil {
				return sdk.ErrnoNoLine
			}
			if err := b.Tx(addr, w, r); err != nil {
				if errors.Is(err, i2c.ErrNoDevice) {
					return sdk.ErrnoNoDevice
				}
				return sdk.ErrnoIO
			}
			return nil
		},
		SerialOpen: func(name string, baud int) (int32, error) {
			if err := m.hardware(); err != nil {
				return 0, err
			}
			if m.board.Serial == nil {
				return 0, sdk.ErrnoNoLine
			}
			p, err := m.board.Serial.Open(name, serial.Mode{Baud: baud})
			if err != nil {
				return 0, sdk.ErrnoNoLine
			}
			m.next++
			m.ports[m.next] = p
			return m.next, nil
		},
		SerialWrite: func(h int32, b []byte) (int, error) {
			p, ok := m.ports[h]
			if !ok {
				return 0, sdk.ErrnoBadArg
			}
			n, err := p.Write(b)
			return n, ioErr(err)
		},
		SerialRead: func(h int32, b []byte, timeout time.Duration) (int, error) {
			p, ok := m.ports[h]
			if !ok {
				return 0, sdk.ErrnoBadArg
			}
			n, err := p.Read(b, timeout)
			return n, ioErr(err)
		},
		SerialClose: func(h int32) error {
			p, ok := m.ports[h]
			if !ok {
				return sdk.ErrnoBadArg
			}
			delete(m.ports, h)
			return ioErr(p.Close())
		},
		StateRead: func(path string) ([]byte, error) {
			if m.phase == "sense" || m.phase == "" {
				return nil, sdk.ErrnoNoState
			}
			ptr, err := state.ParsePointer(path)
			if err != nil {
				return nil, sdk.ErrnoBadArg
			}
			v, ok := state.Get(m.state, ptr)
			return abi.AppendState(nil, v, ok)
		},
		Log: func(level int32, msg string) {
			m.logs = append(m.logs, msg)
		},
	}
}

// hardware refuses hardware calls while planning, as ternd does.
func (m *Module) hardware() error {
	if m.phase == "try" {
		return sdk.ErrnoPlanning
	}
	return nil
}

func (m *Module) pin(line string) (gpio.Pin, error) {
	if err := m.hardware(); err != nil {
		return nil, err
	}
	if m.board.GPIO == nil {
		return nil, sdk.ErrnoNoLine
	}
	p, err := m.board.GPIO.Pin(line)
	if err != nil {
		return nil, sdk.ErrnoNoLine
	}
	return p, nil
}

// ioErr is what ternd makes of a hardware error: sdk.ErrnoIO.
func ioErr(err error) error {
	if err != nil {
		return sdk.ErrnoIO
	}
	return nil
}
