package devbroker

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
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
	nsubs   []*nats.Subscription
	subs    []subscription
	started bool
	closed  bool

	// What SyncRetained waits on: the highest stream sequence of the
	// retained messages nats-server has indexed, and a channel closed
	// (and replaced) whenever it grows.
	rmu       sync.Mutex
	rwatching bool
	rindexed  uint64
	rgrew     chan struct{}
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
	// Cluster, when its Listen is set, makes the broker one node of a
	// NATS cluster whose JetStream keeps the MQTT streams (sessions,
	// retained messages, QoS 1 messages) on several nodes.
	Cluster Cluster
}

// Cluster is a broker's place in a NATS cluster. Every node of a cluster
// has the same Name and lists the others' Listen addresses in Routes; a
// device lists every node's MQTT address (ternd.yaml's brokers) and fails
// over between them. docs/mqtt.md, "A NATS cluster", has a whole
// configuration.
type Cluster struct {
	// Name is the cluster's name, the same on every node; default "tern".
	Name string
	// Node is this node's name, unique in the cluster: JetStream places
	// replicas by it, so it must stay the same across restarts.
	Node string
	// Listen is the host:port the node takes routes from the others on.
	Listen string
	// Routes are the other nodes' Listen addresses, host:port.
	Routes []string
	// Replicas is how many nodes keep each MQTT stream; 0 means every
	// node, at most 3. It takes effect when the streams are first made.
	Replicas int
}

// MaxPayload is the largest message the broker accepts: 64 MiB, NATS's
// default max_pending, so that today's single-message releases (an agent
// release is up to about 22 MB) go through with room to spare. NATS warns
// about any max_payload above 8 MB (poor performance); the broker does not
// pass that warning on.
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
		// Every QoS 1 subscription is a JetStream consumer on one stream,
		// which NATS bounds at 1,000 consumers by default. Devices hold
		// none (they subscribe at QoS 0), but readers of events do, and
		// a broker must not refuse the 1,001st.
		JetStreamLimits: server.JSLimitOpts{DefaultMaxConsumers: -1},
		MaxPayload:      MaxPayload,
		MaxPending:      4 * MaxPayload,
		NoSigs:          true,
		MQTT: server.MQTTOpts{
			Host: host, Port: port, TLSConfig: tlsConfig,
			// A busy machine (a test suite on two cores) can take
			// seconds over a JetStream request; the default 5 s fails
			// connections that would have succeeded. A cluster node
			// keeps NATS's 5 s (see cluster).
			JSAPITimeout: 30 * time.Second,
			// NATS bounds the unacknowledged messages of one session's
			// QoS 1 subscriptions together at 65,535; at its default of
			// 1,024 per subscription a session holds 63 of them. 32 each
			// allows 2,047 (devices subscribed at QoS 1, one per group,
			// before they subscribed at QoS 0; a client may still).
			MaxAckPending: maxAckPending,
		},
	}
	if tlsConfig != nil {
		b.opts.MQTT.TLSTimeout = 5
	}
	if err := b.cluster(o.Cluster); err != nil {
		if b.tempDir != "" {
			os.RemoveAll(b.tempDir)
		}
		return nil, err
	}
	return b, nil
}

// cluster sets b's options for c, if c says to join a cluster.
func (b *Broker) cluster(c Cluster) error {
	if c.Listen == "" {
		if c.Node != "" || len(c.Routes) > 0 || c.Replicas != 0 {
			return errors.New("devbroker: cluster: the node, routes and replicas need a cluster listen address (--cluster-listen host:port)")
		}
		return nil
	}
	host, port, err := hostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("devbroker: cluster listen address %q: %w", c.Listen, err)
	}
	if c.Node == "" {
		return errors.New("devbroker: cluster: every node needs its own name (--node n1), the same across restarts")
	}
	if len(c.Routes) == 0 {
		return errors.New("devbroker: cluster: a node needs the others' cluster addresses (--routes host:port,host:port)")
	}
	if c.Replicas < 0 || c.Replicas > len(c.Routes)+1 {
		return fmt.Errorf("devbroker: cluster: %d replicas, but the cluster has %d nodes; choose 1 to %d, or 0 for nats-server's choice", c.Replicas, len(c.Routes)+1, len(c.Routes)+1)
	}
	name := c.Name
	if name == "" {
		name = "tern"
	}
	b.opts.ServerName = c.Node
	b.opts.Cluster = server.ClusterOpts{Name: name, Host: host, Port: port}
	for _, r := range c.Routes {
		if _, _, err := hostPort(r); err != nil {
			return fmt.Errorf("devbroker: cluster route %q: %w", r, err)
		}
		b.opts.Routes = append(b.opts.Routes, &url.URL{Scheme: "nats-route", Host: r})
	}
	// nats-server's own default counts the routes, expecting a node to
	// list itself among them; a node here lists the others.
	b.opts.MQTT.StreamReplicas = cmp.Or(c.Replicas, min(len(c.Routes)+1, 3))
	// When a node dies, a JetStream request to a stream leader it held
	// goes unanswered, and a node holds every MQTT connection of its
	// clients behind it until the request times out: with 30 s, every
	// device failing over waited 30 s; with NATS's 5 s, 5 s.
	b.opts.MQTT.JSAPITimeout = clusterJSAPITimeout
	// nats-server starts its routes once its client listener is up, so
	// a node listens for NATS clients too: on loopback, on a free port.
	b.opts.DontListen = false
	return nil
}

// clusterJSAPITimeout is a cluster node's MQTT JetStream request
// timeout: nats-server's default.
const clusterJSAPITimeout = 5 * time.Second

// hostPort checks a host:port address.
func hostPort(addr string) (string, int, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%w; use host:port, e.g. 127.0.0.1:6222", err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, errors.New("the port must be a number from 1 to 65535")
	}
	return host, port, nil
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
		sub, err := b.nc.Subscribe(subj, func(m *nats.Msg) { s.fn(topic(m.Subject), m.Data) })
		if err != nil {
			return fmt.Errorf("devbroker: subscribe to %q: %w", s.filter, err)
		}
		b.nsubs = append(b.nsubs, sub)
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

// SyncRetained returns once every retained message the broker has
// acknowledged is also in the index it serves new subscriptions from, or
// when ctx is done. nats-server stores a retained message before it
// acknowledges it, but indexes it asynchronously, some milliseconds
// later (docs/mqtt.md, NATS): a subscription made in between misses it.
// Tests that subscribe to see a retained message published just before
// call it first; tern itself does not rely on it, as fleets on NATS do
// not have it.
//
// It watches what nats-server's index is fed from: the deliveries of
// the consumer on the retained messages' stream ($MQTT_rmsgs), from the
// first call on. nats-server hands a delivery to the index and to the
// watch in one pass, in either order, and the watch may see it first:
// once the watch has seen the last message, retainedBarrier waits for
// that pass to end.
func (b *Broker) SyncRetained(ctx context.Context) error {
	_, nc, err := b.running("SyncRetained")
	if err != nil {
		return err
	}
	var stream struct {
		State struct {
			LastSeq uint64 `json:"last_seq"`
		} `json:"state"`
	}
	switch err := jsAPI(ctx, nc, "STREAM.INFO."+retainedStream, nil, &stream); {
	case errors.Is(err, errNoStream):
		return nil // no MQTT client yet, so no retained message
	case err != nil:
		return fmt.Errorf("devbroker: SyncRetained: %w", err)
	}
	if err := b.watchRetained(ctx, nc); err != nil {
		return fmt.Errorf("devbroker: SyncRetained: %w", err)
	}
	for {
		b.rmu.Lock()
		done, grew := b.rindexed >= stream.State.LastSeq, b.rgrew
		b.rmu.Unlock()
		if done {
			return retainedBarrier(ctx, nc)
		}
		select {
		case <-grew:
		case <-ctx.Done():
			return fmt.Errorf("devbroker: SyncRetained: %w", ctx.Err())
		}
	}
}

// running returns the server and the in-process connection of a broker
// that runs, or an error naming what (a method) needed it.
func (b *Broker) running(what string) (*server.Server, *nats.Conn, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.started || b.closed {
		return nil, nil, fmt.Errorf("devbroker: %s: the broker is not running", what)
	}
	return b.srv, b.nc, nil
}

// retainedStream is nats-server's stream of retained MQTT messages.
const retainedStream = "$MQTT_rmsgs"

// watchRetained starts following the deliveries of the consumer that
// feeds nats-server's index of retained messages, once.
func (b *Broker) watchRetained(ctx context.Context, nc *nats.Conn) error {
	b.rmu.Lock()
	defer b.rmu.Unlock()
	if b.rwatching {
		return nil
	}
	var list struct {
		Consumers []struct {
			Config struct {
				DeliverSubject string `json:"deliver_subject"`
			} `json:"config"`
			Delivered struct {
				StreamSeq uint64 `json:"stream_seq"`
			} `json:"delivered"`
			PushBound bool `json:"push_bound"`
		} `json:"consumers"`
	}
	if err := jsAPI(ctx, nc, "CONSUMER.LIST."+retainedStream, nil, &list); err != nil {
		return err
	}
	for _, c := range list.Consumers {
		if !c.PushBound || c.Config.DeliverSubject == "" {
			continue // a consumer of a broker before a restart, expiring
		}
		_, err := nc.Subscribe(c.Config.DeliverSubject, func(m *nats.Msg) {
			md, err := m.Metadata()
			if err != nil {
				return
			}
			b.rmu.Lock()
			defer b.rmu.Unlock()
			if md.Sequence.Stream > b.rindexed {
				b.rindexed = md.Sequence.Stream
				close(b.rgrew)
				b.rgrew = make(chan struct{})
			}
		})
		if err != nil {
			return err
		}
		if err := nc.Flush(); err != nil {
			return err
		}
		b.rindexed = max(b.rindexed, c.Delivered.StreamSeq)
		b.rgrew = make(chan struct{})
		b.rwatching = true
		return nil
	}
	return errors.New("nats-server has no consumer feeding its index of retained messages")
}

// retainedBarrier returns once the pass that delivers a message of the
// retained messages' stream, seen before the call, has ended: everyone
// that message was delivered to, nats-server's index among them, has
// handled it. The stream hands out what its consumers send in one loop,
// one message after another, so a reply sent the same way after the
// call is a barrier: the "no messages" answer of a pull consumer made
// for the purpose.
func retainedBarrier(ctx context.Context, nc *nats.Conn) error {
	var created struct {
		Name string `json:"name"`
	}
	cfg := `{"stream_name":"` + retainedStream + `","config":{"deliver_policy":"new","ack_policy":"none","mem_storage":true,"inactive_threshold":60000000000}}`
	if err := jsAPI(ctx, nc, "CONSUMER.CREATE."+retainedStream, []byte(cfg), &created); err != nil {
		return fmt.Errorf("devbroker: SyncRetained: %w", err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		jsAPI(ctx, nc, "CONSUMER.DELETE."+retainedStream+"."+created.Name, nil, &struct{}{}) // else it expires after a minute
	}()
	if _, err := nc.RequestWithContext(ctx, "$JS.API.CONSUMER.MSG.NEXT."+retainedStream+"."+created.Name, []byte(`{"batch":1,"no_wait":true}`)); err != nil {
		return fmt.Errorf("devbroker: SyncRetained: %w", err)
	}
	return nil
}

// errNoStream is JetStream's "stream not found".
var errNoStream = errors.New("stream not found")

// jsAPI makes the JetStream API request $JS.API.<what> with body (nil
// for none) and decodes the answer into v.
func jsAPI(ctx context.Context, nc *nats.Conn, what string, body []byte, v any) error {
	m, err := nc.RequestWithContext(ctx, "$JS.API."+what, body)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	var e struct {
		Error *struct {
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &e); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	switch {
	case e.Error == nil:
	case e.Error.ErrCode == 10059: // JSStreamNotFoundErr
		return errNoStream
	default:
		return fmt.Errorf("%s: %s", what, e.Error.Description)
	}
	if err := json.Unmarshal(m.Data, v); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// WaitCluster returns once the broker is a current member of its
// cluster's JetStream (a meta leader elected, this node caught up), or
// when ctx is done. A node alone cannot be: it waits for the others. A
// broker outside a cluster returns at once.
func (b *Broker) WaitCluster(ctx context.Context) error {
	srv, _, err := b.running("WaitCluster")
	if err != nil {
		return err
	}
	if b.opts.Cluster.Port == 0 {
		return nil
	}
	for {
		if srv.JetStreamIsCurrent() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("devbroker: node %s is not a current member of the cluster's JetStream: %w", b.opts.ServerName, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
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

// shutdown stops the server, if it runs. Its own subscriptions
// (Subscribe) are closed after it, once their handlers have taken what
// reached them: a message the broker acknowledged to its publisher was
// routed to them, and closing them first would drop those still queued
// (an auditor would miss an event the device was told was delivered).
func (b *Broker) shutdown() {
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
	if b.nc != nil {
		for _, sub := range b.nsubs {
			for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
				if n, _, err := sub.Pending(); err != nil || n == 0 {
					break
				}
			}
		}
		b.nc.Close()
	}
	b.nsubs = nil
}

// natsLog is nats-server's log through slog.
type natsLog struct{ l *slog.Logger }

func (n natsLog) Noticef(format string, v ...any) { n.l.Info(fmt.Sprintf(format, v...)) }
func (n natsLog) Warnf(format string, v ...any) {
	if strings.HasPrefix(format, "Maximum payloads over") {
		return // MaxPayload is above 8 MB on purpose; see there
	}
	n.l.Warn(fmt.Sprintf(format, v...))
}
func (n natsLog) Fatalf(format string, v ...any) { n.l.Error(fmt.Sprintf(format, v...)) }
func (n natsLog) Errorf(format string, v ...any) { n.l.Error(fmt.Sprintf(format, v...)) }
func (n natsLog) Debugf(format string, v ...any) { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n natsLog) Tracef(format string, v ...any) { n.l.Debug(fmt.Sprintf(format, v...)) }

// orDiscard returns l, or a logger that drops everything.
func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
