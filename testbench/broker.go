package testbench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/devbroker"
)

// broker is the scenario's broker, which the broker_down fault stops and
// starts again on the same address.
type broker interface {
	URL() string
	// Brokers are the addresses agent i (from 0) lists, to fail over
	// between; nil: URL alone.
	Brokers(i int) []string
	Stop() error
	Start() error
	Close() error
}

// freeAddr is 127.0.0.1 with a port that was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("testbench: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// embedded is tern's embedded broker. Its data directory keeps sessions
// and retained messages across a restart, as Mosquitto's persistence does.
// The observer watches inside it (broker.Broker.Subscribe), set up again
// before every start: it sees every report the broker receives.
type embedded struct {
	addr  string
	dir   string // the data directory, removed at Close
	watch func(topic string, payload []byte)
	filts []string

	mu sync.Mutex
	b  *devbroker.Broker
}

func newEmbedded(filters []string, watch func(string, []byte)) (*embedded, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tern-testbench-broker-")
	if err != nil {
		return nil, fmt.Errorf("testbench: broker data directory: %w", err)
	}
	e := &embedded{addr: addr, dir: dir, watch: watch, filts: filters}
	if err := e.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return e, nil
}

func (e *embedded) URL() string { return "tcp://" + e.addr }

func (e *embedded) Brokers(int) []string { return nil }

func (e *embedded) Start() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.b != nil {
		return nil
	}
	b, err := devbroker.Open(e.addr, devbroker.Options{DataDir: e.dir})
	if err != nil {
		return err
	}
	for _, f := range e.filts {
		if err := b.Subscribe(f, e.watch); err != nil {
			return err
		}
	}
	// The port may linger a moment after a stop.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if err = b.Start(); err == nil || time.Now().After(deadline) {
			break
		}
		if b, err = devbroker.Open(e.addr, devbroker.Options{DataDir: e.dir}); err != nil {
			return err
		}
		for _, f := range e.filts {
			if err := b.Subscribe(f, e.watch); err != nil {
				return err
			}
		}
	}
	if err != nil {
		return err
	}
	e.b = b
	return nil
}

func (e *embedded) Stop() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.b == nil {
		return nil
	}
	err := e.b.Close()
	e.b = nil
	return err
}

func (e *embedded) Close() error {
	err := e.Stop()
	if rmErr := os.RemoveAll(e.dir); err == nil && rmErr != nil {
		err = fmt.Errorf("testbench: remove the broker's data: %w", rmErr)
	}
	return err
}

// mosquitto is a mosquitto process with persistence on, as fleets run it:
// sessions and queued messages survive a restart. The observer is an MQTT
// client with a persistent session, so it misses nothing either.
type mosquitto struct {
	addr, conf string
	log        *bytes.Buffer

	mu   sync.Mutex
	cmd  *exec.Cmd
	exit chan error

	obs paho.Client
}

func mosquittoBinary() (string, error) {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("testbench: broker: mosquitto: not found; install it (apt-get install mosquitto) or use broker: embedded")
}

func newMosquitto(dir string, filters []string, watch func(string, []byte)) (*mosquitto, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(dir, "mosquitto.conf")
	user := ""
	if os.Geteuid() == 0 {
		user = "user root\n" // else it drops to a user that cannot write dir
	}
	text := fmt.Sprintf("listener %s %s\nallow_anonymous true\npersistence true\npersistence_location %s/\n%slog_dest stderr\n", port, host, dir, user)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return nil, fmt.Errorf("testbench: mosquitto config: %w", err)
	}
	m := &mosquitto{addr: addr, conf: conf, log: new(bytes.Buffer)}
	if err := m.Start(); err != nil {
		return nil, err
	}
	opts := paho.NewClientOptions().AddBroker(m.URL()).SetClientID("tern-testbench-observer").
		SetCleanSession(false).SetAutoReconnect(true).SetMaxReconnectInterval(time.Second).
		SetOrderMatters(true).SetKeepAlive(5 * time.Second).
		SetDefaultPublishHandler(func(_ paho.Client, msg paho.Message) { watch(msg.Topic(), msg.Payload()) })
	m.obs = paho.NewClient(opts)
	if tok := m.obs.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		m.Close()
		return nil, fmt.Errorf("testbench: observer cannot connect to mosquitto: %v", tok.Error())
	}
	for _, f := range filters {
		if tok := m.obs.Subscribe(f, 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			m.Close()
			return nil, fmt.Errorf("testbench: observer cannot subscribe to %s: %v", f, tok.Error())
		}
	}
	return m, nil
}

func (m *mosquitto) URL() string { return "tcp://" + m.addr }

func (m *mosquitto) Brokers(int) []string { return nil }

func (m *mosquitto) Start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return nil
	}
	bin, err := mosquittoBinary()
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "-c", m.conf)
	cmd.Stdout, cmd.Stderr = m.log, m.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testbench: start mosquitto: %w", err)
	}
	exit := make(chan error, 1)
	go func() { exit <- cmd.Wait() }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-exit:
			return fmt.Errorf("testbench: mosquitto exited at start (%v): %s", err, m.log)
		default:
		}
		if c, err := net.DialTimeout("tcp", m.addr, 250*time.Millisecond); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			return fmt.Errorf("testbench: mosquitto does not accept connections on %s: %s", m.addr, m.log)
		}
	}
	m.cmd, m.exit = cmd, exit
	return nil
}

func (m *mosquitto) Stop() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return nil
	}
	m.cmd.Process.Signal(syscall.SIGTERM) // it writes its database on SIGTERM
	select {
	case <-m.exit:
	case <-time.After(5 * time.Second):
		m.cmd.Process.Kill()
		<-m.exit
	}
	m.cmd = nil
	return nil
}

func (m *mosquitto) Close() error {
	if m.obs != nil {
		m.obs.Disconnect(100)
	}
	return m.Stop()
}

// operator dials the fleet's operator end, retrying while the broker
// comes up.
func dialOperator(ctx context.Context, url, fleetName string) (*fleet.Operator, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return fleet.DialOperator(ctx, fleet.OperatorOptions{Broker: url, Topics: fleet.Topics{Fleet: fleetName}, Logger: slog.New(slog.DiscardHandler)})
}
