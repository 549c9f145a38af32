package devbroker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/tern-iot/tern/fleet"
)

// Broker is an MQTT broker in the process, for development, the demo, the
// testbench and tests; `tern broker` runs one. It is an embedded
// nats-server serving MQTT 3.1.1 (QoS 0 and 1), whose sessions and
// retained messages JetStream keeps in a data directory: with
// Options.DataDir they survive a restart of the broker.
//
// It lets every client connect and use every topic (no passwords, no
// ACLs). [NewTLS] makes it speak TLS and, optionally, admit only clients
// with a certificate from a given CA. Fleets in production use Mosquitto
// or a NATS cluster; see docs/mqtt.md.
type Broker struct {
	addr    string
	tls     bool
	opts    *server.Options
	tempDir string // the data directory to remove at Close, if the broker made it
	log     *slog.Logger

	mu      sync.Mutex
	srv     *server.Server
	nc      *nats.Conn // Subscribe's connection, in the process
	subs    []subscription
	started bool
	closed  bool
}

type subscription struct {
	filter string
	fn     func(topic string, payload []byte)
}

// Options are what a broker may be given beyond its address.
type Options struct {
	// DataDir is where JetStream keeps sessions and retained messages.
	// Empty: a temporary directory, removed at Close, so nothing survives
	// the broker.
	DataDir string
	// TLS, when not zero, makes the broker listen with TLS (see NewTLS).
	TLS fleet.TLSFiles
	// Logger receives the broker's own log; nil discards it.
	Logger *slog.Logger
}

// MaxPayload is the largest message the broker accepts: 64 MiB, NATS's
// own ceiling, so that today's single-message releases (up to about
// 22 MB of agent binary) go through.
const MaxPayload = 64 << 20

// New prepares a broker that will listen on addr, host:port, e.g.
// "127.0.0.1:1883", or "127.0.0.1:0" for a free port (see Addr). The
// broker's own log goes to logger, nil discards it. Nothing listens until
// Start. Nothing it holds survives Close.
func New(addr string, logger *slog.Logger) (*Broker, error) {
	return Open(addr, Options{Logger: logger})
}

// NewTLS is New with a TLS listener: files.Cert and files.Key
// are the broker's certificate and key, and when files.CA is set, every
// client must present a certificate signed by it (Mosquitto's
// require_certificate). The files are read once, here. Clients still use
// every topic: the certificate decides who connects, not what they may do.
func NewTLS(addr string, files fleet.TLSFiles, logger *slog.Logger) (*Broker, error) {
	return Open(addr, Options{TLS: files, Logger: logger})
}

// Open prepares a broker on addr with o. Nothing listens until Start.
func Open(addr string, o Options) (*Broker, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("devbroker: listen address %q: %w; use host:port, e.g. 127.0.0.1:1883", addr, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("devbroker: listen address %q: the port must be a number from 0 to 65535", addr)
	}
	var tlsConfig *tls.Config
	if !o.TLS.IsZero() {
		if tlsConfig, err = o.TLS.ServerConfig(); err != nil {
			return nil, err
		}
	}
	b := &Broker{addr: addr, tls: tlsConfig != nil, log: orDiscard(o.Logger)}
	dir := o.DataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "tern-broker-"); err != nil {
			return nil, fmt.Errorf("devbroker: data directory: %w", err)
		}
		b.tempDir = dir
	} else if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("devbroker: data directory: %w", err)
	}
	if port == 0 {
		port = server.RANDOM_PORT // NATS takes 0 for its default port
	}
	b.opts = &server.Options{
		ServerName: "tern-broker",
		Host:       "127.0.0.1", Port: server.RANDOM_PORT, // NATS clients: only Subscribe's, in the process
		DontListen: true,
		JetStream:  true, StoreDir: dir,
		MaxPayload: MaxPayload,
		MaxPending: 4 * MaxPayload,
		NoSigs:     true,
		MQTT: server.MQTTOpts{
			Host: host, Port: port, TLSConfig: tlsConfig,
			// A busy machine (a test suite on two cores) can take
			// seconds over a JetStream request; the default 5 s fails
			// connections that would have succeeded.
			JSAPITimeout: 30 * time.Second,
			// NATS bounds the unacknowledged messages of one session's
			// QoS 1 subscriptions together at 65,535; at its default of
			// 1,024 per subscription a session holds 63 of them, and an
			// operator reading the targets of a thousand devices needs
			// a thousand. 32 each allows 2,047.
			MaxAckPending: maxAckPending,
		},
	}
	if tlsConfig != nil {
		b.opts.MQTT.TLSTimeout = 5
	}
	return b, nil
}

// Start listens and serves in the background; it returns once the broker
// accepts connections. A broker starts once.
func (b *Broker) Start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return errors.New("devbroker: closed; create a new one with devbroker.New")
	case b.started:
		return errors.New("devbroker: already started")
	}
	// NATS logs a listener it cannot open and goes on without it: find
	// out first, to say so.
	if b.opts.MQTT.Port != server.RANDOM_PORT {
		l, err := net.Listen("tcp", net.JoinHostPort(b.opts.MQTT.Host, strconv.Itoa(b.opts.MQTT.Port)))
		if err != nil {
			return fmt.Errorf("devbroker: cannot listen on %s: %w; is another broker running there? choose another address", b.addr, err)
		}
		l.Close()
	}
	srv, err := server.NewServer(b.opts)
	if err != nil {
		return fmt.Errorf("devbroker: %w", err)
	}
	srv.SetLoggerV2(natsLog{b.log}, false, false, false)
	go srv.Start()
	if !srv.ReadyForConnections(startBound) || b.opts.MQTT.Port <= 0 {
		srv.Shutdown()
		return fmt.Errorf("devbroker: the broker on %s did not start within %v; its log says why", b.addr, startBound)
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name("devbroker.Subscribe"), nats.MaxReconnects(-1))
	if err != nil {
		srv.Shutdown()
		return fmt.Errorf("devbroker: in-process connection: %w", err)
	}
	b.srv, b.nc = srv, nc
	for _, s := range b.subs {
		if err := b.subscribe(s); err != nil {
			b.shutdown()
			return err
		}
	}
	if err := nc.Flush(); err != nil {
		b.shutdown()
		return fmt.Errorf("devbroker: in-process connection: %w", err)
	}
	b.started = true
	return nil
}

// maxAckPending is how many QoS 1 messages one subscription may have
// unacknowledged.
const maxAckPending = 32

// startBound is how long Start waits for the broker to accept connections.
const startBound = 30 * time.Second

// Subscribe calls fn, in the broker's own process, with every message
// published on a topic matching filter (MQTT wildcards allowed) from then
// on, retained messages included. No MQTT session is involved: a
// subscription made before Start is in place before the first client
// connects, so it sees everything the broker receives; the testbench and
// tests watch devices this way. fn is called for one subscription at a
// time, in the order the messages arrived; it must not block for long.
func (b *Broker) Subscribe(filter string, fn func(topic string, payload []byte)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errors.New("devbroker: closed")
	}
	if _, err := subjects(filter); err != nil {
		return fmt.Errorf("devbroker: subscribe to %q: %w", filter, err)
	}
	s := subscription{filter, fn}
	b.subs = append(b.subs, s)
	if b.started {
		if err := b.subscribe(s); err != nil {
			return err
		}
		return b.nc.Flush()
	}
	return nil
}

func (b *Broker) subscribe(s subscription) error {
	subs, _ := subjects(s.filter)
	for _, subj := range subs {
		if _, err := b.nc.Subscribe(subj, func(m *nats.Msg) { s.fn(topic(m.Subject), m.Data) }); err != nil {
			return fmt.Errorf("devbroker: subscribe to %q: %w", s.filter, err)
		}
	}
	return nil
}

// subjects are the NATS subjects an MQTT topic filter matches, as
// nats-server maps them: levels become tokens, "+" is "*", a "." inside a
// level is "//", and "a/#" is both "a" and "a.>".
func subjects(filter string) ([]string, error) {
	if filter == "" {
		return nil, errors.New("empty filter")
	}
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		switch {
		case l == "":
			return nil, errors.New("empty topic level; tern's topics have none")
		case l == "+":
			levels[i] = "*"
		case l == "#":
			if i != len(levels)-1 {
				return nil, errors.New("# must be the last level")
			}
			if i == 0 {
				return []string{">"}, nil
			}
			base := strings.Join(levels[:i], ".")
			return []string{base, base + ".>"}, nil
		case strings.ContainsAny(l, "+#* >\t\n"):
			return nil, fmt.Errorf("level %q: wildcards stand alone, and topics have no spaces", l)
		default:
			levels[i] = strings.ReplaceAll(l, ".", "//")
		}
	}
	return []string{strings.Join(levels, ".")}, nil
}

// topic is the MQTT topic of a subject that subjects mapped.
func topic(subject string) string {
	levels := strings.Split(subject, ".")
	for i, l := range levels {
		levels[i] = strings.ReplaceAll(l, "//", ".")
	}
	return strings.Join(levels, "/")
}

// Addr is the address the broker listens on: after Start, the real one
// (with the port chosen when the port asked for was 0).
func (b *Broker) Addr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.started {
		return b.addr
	}
	return net.JoinHostPort(b.opts.MQTT.Host, strconv.Itoa(b.opts.MQTT.Port))
}

// URL is the broker's address for clients: tcp://Addr(), or ssl://Addr()
// for a TLS broker.
func (b *Broker) URL() string {
	if b.tls {
		return "ssl://" + b.Addr()
	}
	return "tcp://" + b.Addr()
}

// Close disconnects every client and stops listening. Without a DataDir,
// sessions and retained messages are gone; with one, the next broker on
// it finds them. It is safe to call more than once.
func (b *Broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	b.shutdown()
	if b.tempDir != "" {
		if err := os.RemoveAll(b.tempDir); err != nil {
			return fmt.Errorf("devbroker: remove its data: %w", err)
		}
	}
	return nil
}

// shutdown stops the server, if it runs.
func (b *Broker) shutdown() {
	if b.nc != nil {
		b.nc.Close()
	}
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
}

// natsLog is nats-server's log through slog.
type natsLog struct{ l *slog.Logger }

func (n natsLog) Noticef(format string, v ...any) { n.l.Info(fmt.Sprintf(format, v...)) }
func (n natsLog) Warnf(format string, v ...any)   { n.l.Warn(fmt.Sprintf(format, v...)) }
func (n natsLog) Fatalf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n natsLog) Errorf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n natsLog) Debugf(format string, v ...any)  { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n natsLog) Tracef(format string, v ...any)  { n.l.Debug(fmt.Sprintf(format, v...)) }

// orDiscard returns l, or a logger that drops everything.
func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
