package devbroker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/tern-iot/tern/fleet"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Broker is an MQTT broker in the process (mochi-mqtt), for development,
// the demo, the testbench and tests; `tern broker` runs one.
//
// It is for development only: it lets every client connect and use every
// topic (no passwords, no ACLs), and keeps sessions and retained messages
// in memory only. [NewTLS] makes it speak TLS and, optionally, admit
// only clients with a certificate from a given CA. Fleets in production use Mosquitto or a
// clustered broker; see docs/mqtt.md.
type Broker struct {
	addr string
	tls  bool
	srv  *mqtt.Server
	tcp  *listeners.TCP

	mu      sync.Mutex
	started bool
	closed  bool
	subs    int // Subscribe's subscription ids
}

// New prepares a broker that will listen on addr, host:port, e.g.
// "127.0.0.1:1883", or "127.0.0.1:0" for a free port (see Addr). The
// broker's own log goes to logger, nil discards it. Nothing listens until
// Start.
func New(addr string, logger *slog.Logger) (*Broker, error) {
	return newBroker(addr, nil, logger)
}

// NewTLS is New with a TLS listener: files.Cert and files.Key
// are the broker's certificate and key, and when files.CA is set, every
// client must present a certificate signed by it (Mosquitto's
// require_certificate). The files are read once, here. Clients still use
// every topic: the certificate decides who connects, not what they may do.
func NewTLS(addr string, files fleet.TLSFiles, logger *slog.Logger) (*Broker, error) {
	cfg, err := files.ServerConfig()
	if err != nil {
		return nil, err
	}
	return newBroker(addr, cfg, logger)
}

func newBroker(addr string, tlsConfig *tls.Config, logger *slog.Logger) (*Broker, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("devbroker: listen address %q: %w; use host:port, e.g. 127.0.0.1:1883", addr, err)
	}
	caps := mqtt.NewDefaultServerCapabilities()
	// mochi drops retained messages older than a day by default; targets
	// and releases are retained for as long as they hold.
	caps.MaximumMessageExpiryInterval = 0
	srv := mqtt.New(&mqtt.Options{
		Capabilities:           caps,
		Logger:                 orDiscard(logger),
		SysTopicResendInterval: 60,   // seconds; $SYS statistics are noise here
		InlineClient:           true, // for Subscribe
	})
	if err := srv.AddHook(new(allowAll), nil); err != nil {
		return nil, fmt.Errorf("devbroker: install allow-all auth: %w", err)
	}
	return &Broker{
		addr: addr,
		tls:  tlsConfig != nil,
		srv:  srv,
		tcp:  listeners.NewTCP(listeners.Config{Type: listeners.TypeTCP, ID: "tcp", Address: addr, TLSConfig: tlsConfig}),
	}, nil
}

// Start listens and serves in the background; it returns once the broker
// accepts connections. A broker starts once.
func (b *Broker) Start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return errors.New("devbroker: closed; create a new one with broker.New")
	case b.started:
		return errors.New("devbroker: already started")
	}
	if err := b.srv.AddListener(b.tcp); err != nil {
		return fmt.Errorf("devbroker: cannot listen on %s: %w; is another broker running there? choose another address", b.addr, err)
	}
	if err := b.srv.Serve(); err != nil {
		return fmt.Errorf("devbroker: on %s: %w", b.addr, err)
	}
	b.started = true
	return nil
}

// Subscribe calls fn, in the broker's own process, with every message
// published on a topic matching filter (MQTT wildcards allowed) from then
// on, retained messages included. No connection or session is involved,
// so a subscription made before Start sees everything the broker ever
// receives; the testbench and tests watch devices this way. fn runs on the
// broker's goroutines: it must not block.
func (b *Broker) Subscribe(filter string, fn func(topic string, payload []byte)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errors.New("devbroker: closed")
	}
	b.subs++
	err := b.srv.Subscribe(filter, b.subs, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		fn(pk.TopicName, pk.Payload)
	})
	if err != nil {
		return fmt.Errorf("devbroker: subscribe to %q: %w", filter, err)
	}
	return nil
}

// Addr is the address the broker listens on: after Start, the real one
// (with the port chosen when the port asked for was 0).
func (b *Broker) Addr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.started {
		return b.addr
	}
	return b.tcp.Address()
}

// URL is the broker's address for clients: tcp://Addr(), or ssl://Addr()
// for a TLS broker.
func (b *Broker) URL() string {
	if b.tls {
		return "ssl://" + b.Addr()
	}
	return "tcp://" + b.Addr()
}

// ErrCloseStuck is what Close returns when mochi-mqtt's own Close
// did not return within closeBound: it takes a read lock on its client
// list twice over (Clients.GetByListener calls Len), so a client that
// disconnects at that moment (its Delete waiting for the write lock)
// deadlocks it. The broker's goroutines are then left behind; nothing
// else is affected. Issue 16 replaces this broker.
var ErrCloseStuck = errors.New("devbroker: the embedded broker's Close deadlocked (a known mochi-mqtt bug when a client disconnects during Close)")

// closeBound is how long Close waits for mochi-mqtt to close.
const closeBound = 10 * time.Second

// Close disconnects every client and stops listening. Sessions and retained
// messages are lost. It is safe to call more than once. It returns
// ErrCloseStuck, rather than hang, if the broker's Close deadlocks.
func (b *Broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	done := make(chan error, 1)
	go func() { done <- b.srv.Close() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("devbroker: close on %s: %w", b.addr, err)
		}
		return nil
	case <-time.After(closeBound):
		return fmt.Errorf("close broker on %s: %w", b.addr, ErrCloseStuck)
	}
}

// allowAll lets every client connect and use every topic. It is mochi's
// auth.AllowHook, written out to keep that package's YAML dependency out of
// the build.
type allowAll struct{ mqtt.HookBase }

func (*allowAll) ID() string { return "tern-allow-all" }

func (*allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (*allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (*allowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

// orDiscard returns l, or a logger that drops everything.
func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
