package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tern-iot/tern/runtime/api"
	"github.com/tern-iot/tern/runtime/store"
)

// Defaults of DeviceOptions.
const (
	DefaultConnectTimeout   = 10 * time.Second
	DefaultKeepAlive        = 30 * time.Second
	DefaultMaxRetryInterval = 30 * time.Second
)

// refusalBuffer is how many refusals wait for a slow consumer before the
// oldest are dropped.
const refusalBuffer = 16

// minReport is the smallest DeviceOptions.MaxReport (12 KiB): room for an
// event whose message the agent cut to its bound (8 KiB), and for any
// marker.
const minReport = 12 << 10

// A report the broker never acknowledges because it drops the connection
// on it (Mosquitto's max_packet_size) looks like a network that fails: the
// device cannot tell them apart from one loss. Once refusalStrikes
// connections ended while the same report was the largest in flight and
// not yet acknowledged, it takes it for refused; reports of strikeFloor
// bytes or less never are, as no broker limits messages that small, so a
// flapping link does not cut them.
const (
	refusalStrikes = 5
	strikeFloor    = 16 << 10
)

// DeviceOptions configures a [Device]. Zero durations take the documented
// defaults.
type DeviceOptions struct {
	// Broker is the broker's address, tcp://host:port (port 1883 if left
	// out), or ssl://host:port for TLS (also tls://, mqtts://; port 8883 if
	// left out).
	Broker string
	// Brokers, instead of Broker, are the addresses of several nodes of
	// one broker (a cluster). The device connects to one; when it loses
	// that one it tries the next first, and so on round the list, so a
	// device fails over when a node dies.
	Brokers []string
	// TLS names the CA, client certificate and key for an ssl:// broker;
	// see TLSFiles. The CA is required on ssl:// (SystemRoots for the
	// system's roots); with Mosquitto's use_identity_as_username, the
	// certificate's common name must be the device id.
	TLS TLSFiles
	// Topics names the fleet and the topic prefix.
	Topics Topics
	// Device is this device's id, see ValidID.
	Device string
	// ClientID is the MQTT client id, "ternd-<fleet>-<device>" if empty.
	// The broker keeps the device's session under it, so it must stay the
	// same across restarts and be unique in the broker.
	ClientID string
	// Logger receives connection changes and refusals; nil discards them.
	Logger *slog.Logger
	// ConnectTimeout bounds one connection attempt (TCP and MQTT handshake)
	// and the wait for the broker's acknowledgements; default 10s.
	ConnectTimeout time.Duration
	// KeepAlive is the MQTT keep-alive: how often an idle connection is
	// checked with a ping, and about how long (1.5×) the broker waits
	// before it declares the device gone and publishes its last will;
	// default 30s, at least 2s.
	KeepAlive time.Duration
	// Username and Password log in to a broker that requires it (the
	// username is the device id with the shipped ACL,
	// firmware/mosquitto/acl.conf).
	Username, Password string
	// Groups are the groups the device belongs to; it receives their
	// targets too (see docs/mqtt.md for how they combine).
	Groups []string
	// Modules are the job modules the device runs; it receives their
	// releases ([Device.Releases]).
	Modules []string
	// AgentArch, if set, is the device's architecture (one of
	// AgentArches): it receives the agent releases for it
	// ([Device.AgentReleases]).
	AgentArch string
	// MaxRetryInterval caps the backoff between connection attempts, which
	// starts at one second (or at MaxRetryInterval if that is smaller) and
	// doubles; default 30s.
	MaxRetryInterval time.Duration
	// TargetRefresh is how often a connected device asks the broker again
	// for its retained targets and rollout controls (it subscribes to
	// them again), besides at every connection; default
	// DefaultTargetRefresh, negative never. A broker may serve a retained
	// message late to a new subscription: a NATS node indexes it
	// asynchronously, and in a cluster that has just lost a node the
	// index can lag for seconds. A device that subscribed in that gap
	// would hold the old target until its next connection; the refresh
	// bounds that. Soon after each connection it also asks again at
	// 2 s, 8 s and 30 s (refreshSoon), when such a gap is likeliest.
	TargetRefresh time.Duration
	lostTargets   *atomic.Int32 // tests: this many target deliveries are lost
	// Store keeps the outbox: the event reports not yet acknowledged by the
	// broker, so that nothing the device reports while offline, or before a
	// power cut, is lost. Required; ternd passes its agent's store.
	Store store.Store
	// OutboxLimit is how many undelivered event reports the outbox keeps;
	// when it is full the oldest go, and an events.dropped report says how
	// many. Default DefaultOutboxLimit.
	OutboxLimit int
	// InFlight is how many event reports may await the broker's
	// acknowledgement at once. Default DefaultInFlight.
	InFlight int
	// MaxReport is the largest report, in bytes, the device publishes
	// whole. An event report over it goes out as a marker under the same
	// Seq (the event's kind, id, time and names, a message saying it was
	// too large, "truncated": true), and a state report without the
	// state (then without its other long fields), "truncated": true; the
	// device's log keeps the whole report. Set it below the broker's
	// message size limit when that is under MaxPayload (Mosquitto's
	// message_size_limit drops larger reports in silence, its
	// max_packet_size drops the connection). Default and most
	// MaxPayload (256 KiB), least 12 KiB.
	//
	// The device also learns the limit of a broker that drops the
	// connection on large reports: a report over 16 KiB, the largest in
	// flight each of 5 times the connection dropped before the broker
	// acknowledged it, is taken for refused and cut, and reports as
	// large are cut from then on (until the device restarts).
	MaxReport int

	// Dial opens the network connection to the broker (TLS, when the
	// broker is ssl://, runs over it). Nil means a net.Dialer. The
	// testbench replaces it to cut one device's network; see
	// testbench.Link.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// ScopedTarget is a target envelope and where it came from: DeviceScope or
// GroupScope.
type ScopedTarget struct {
	Scope string
	TargetEnvelope
}

// Refusal is a message on one of the device's target or module topics
// that was not a valid envelope, or one made for another fleet or topic
// prefix ([ErrWrongFleet]). Err says why, in words meant for the operator
// who pushed it (see ParseTargetEnvelope, ParseReleaseEnvelope,
// TargetEnvelope.CheckTopics).
type Refusal struct {
	Topic string
	// Module is the module whose topic the message came on; empty for a
	// target topic.
	Module string
	// Agent is true for the agent release topic.
	Agent bool
	// Job is the id a job topic names (its last level); empty for other
	// topics.
	Job string
	Err error
}

// Device is the device end of the fleet contract, used by ternd: it keeps a
// connection to the broker, hands target envelopes to the agent and
// publishes the agent's state and events. Create it with [NewDevice], then
// call [Device.Run]; the other methods are safe for concurrent use.
type Device struct {
	opts    DeviceOptions
	brokers []string
	next    atomic.Int32 // the index in brokers to try first
	at      atomic.Value // string: the broker of the current connection
	log     *slog.Logger

	target, state, events, online string            // topics
	groupTopics                   map[string]string // group target topic → scope
	moduleTopics                  map[string]string // module topic → module name

	// targets holds at most one envelope per scope: the highest version
	// received and not yet taken; releases the same per module. refusals
	// holds the newest refusals.
	targets  chan ScopedTarget
	releases chan ReleaseEnvelope
	agents   chan AgentRelease // agent releases for DeviceOptions.AgentArch
	agent    string            // their topic, or ""
	refusals chan Refusal
	// Jobs received and not yet taken (devicejobs.go), by JobScope, in
	// the order they came.
	jobMu      sync.Mutex
	jobPending map[string]ScopedJob
	jobOrder   []string
	jobWake    chan struct{}
	jobDropped int // jobs refused for a full queue since the connection began (announce)
	// Job statuses waiting to be published, the latest of each job
	// (devicejobs.go); guarded by stateMu.
	jobStats map[string][]byte
	// Chunked releases being fetched (fetch.go): the newest manifest
	// wanted per module, a wake-up for the fetcher, and the chunks as
	// they arrive.
	fetchMu   sync.Mutex
	wanted    map[string]fetchItem
	settled   map[string]string   // release scope → the manifest (fetchItem.mark) last offered or refused
	stale     []string            // chunk topics still subscribed when a connection was lost
	asked     map[string]struct{} // chunk topics the fetcher waits for
	fetchWake chan struct{}
	chunkIn   chan chunkMsg
	// Rollout controls received and not yet taken (devicerollouts.go).
	ctlMu      sync.Mutex
	ctlPending map[string]ReceivedControl
	ctlWake    chan struct{}
	mu         sync.Mutex // serializes sends on targets and refusals with closing them
	closed     bool
	// heard is, per target topic, the hashes of the last payloads that
	// came on this connection (heardOnConn, at most heardPerTopic): the
	// retained copies that subscribing twice and refreshTargets bring are
	// dropped before they are parsed when one came already, so a retained
	// target the agent refuses is refused once per connection, and a
	// lagging broker that serves an older target again after a newer one
	// (a NATS cluster's retained index, after a node died) does not make
	// the device refuse it. A message published again (live, not sent for
	// a subscription) is always parsed: a replay is refused, and said.
	heardMu sync.Mutex
	heard   map[string][][sha256.Size]byte

	ran    atomic.Bool
	client atomic.Pointer[paho.Client]
	// firstAttempt is closed once the first connection attempt ended
	// (see FirstAttempt).
	firstAttempt     chan struct{}
	firstAttemptOnce sync.Once

	// Reports: events go through the durable outbox; the state report is
	// retained by the broker, so only the latest waits, in memory.
	out       *outbox
	sessionUp chan struct{} // the session was set up (after each connect); coalesced
	conns     atomic.Uint64 // counts connections (Connection)
	connected atomic.Uint64 // counts connections set up and announced (Reconnects)
	stateMu   sync.Mutex    // guards pending, stateGen and the state flags and strikes below
	pending   *stateReport  // the latest state report not yet acknowledged, or nil
	stateGen  uint64        // counts PublishState calls
	stateWake chan struct{} // pending was set; coalesced
	stateCut  bool          // the last state report was cut (its Warn was logged)
	// stateUnencodable: the last status PublishState took could not be
	// encoded (its Warn was logged).
	stateUnencodable bool
	// stateStrikes counts the connections in a row that ended while a
	// state report over strikeFloor was in flight.
	stateStrikes int

	// limit is the largest report sent whole: MaxReport, or less once
	// the broker was seen to refuse reports as large (learnLimit).
	limit    atomic.Int64
	strikeMu sync.Mutex
	// strikes counts, per event report (Seq) over strikeFloor, the
	// connections that ended while it was the largest in flight; an
	// acknowledgement clears it.
	strikes map[uint64]int

	// dry holds the dry-run requests not yet taken (dryrun.go); guarded
	// by jobMu.
	dry dryRunInbox
}

// stateReport is a state report waiting to be sent: the status, and its
// encoding (nil if it could not be encoded: the report is then cut).
type stateReport struct {
	status api.Status
	whole  []byte
}

// NewDevice checks opts and returns a Device. It does not connect: that is
// Run's job.
func NewDevice(opts DeviceOptions) (*Device, error) {
	brokers, err := brokerURLs(opts.Broker, opts.Brokers)
	if err != nil {
		return nil, err
	}
	for _, broker := range brokers {
		if err := checkTLS(broker, opts.TLS); err != nil {
			return nil, err
		}
	}
	if err := opts.Topics.Validate(); err != nil {
		return nil, err
	}
	if p := idProblem(opts.Device); p != "" {
		return nil, fmt.Errorf("fleet: device id: %s", p)
	}
	if opts.ClientID == "" {
		opts.ClientID = "ternd-" + opts.Topics.Fleet + "-" + opts.Device
	}
	for name, d := range map[string]*time.Duration{
		"ConnectTimeout":   &opts.ConnectTimeout,
		"KeepAlive":        &opts.KeepAlive,
		"MaxRetryInterval": &opts.MaxRetryInterval,
	} {
		if *d < 0 {
			return nil, fmt.Errorf("fleet: DeviceOptions.%s is negative (%v); use 0 for the default", name, *d)
		}
	}
	if opts.ConnectTimeout == 0 {
		opts.ConnectTimeout = DefaultConnectTimeout
	}
	if opts.KeepAlive == 0 {
		opts.KeepAlive = DefaultKeepAlive
	}
	if opts.KeepAlive < 2*time.Second {
		// MQTT counts whole seconds, and some brokers (nats-server) compute
		// the 1.5× grace in whole seconds too, which leaves none at 1s.
		return nil, fmt.Errorf("fleet: DeviceOptions.KeepAlive is %v; use at least 2s", opts.KeepAlive)
	}
	if opts.MaxRetryInterval == 0 {
		opts.MaxRetryInterval = DefaultMaxRetryInterval
	}
	if opts.TargetRefresh == 0 {
		opts.TargetRefresh = DefaultTargetRefresh
	}
	if opts.Store == nil {
		return nil, errors.New("fleet: DeviceOptions.Store is nil; the device keeps its outbox there (open one with backend.Open, package runtime/store/backend)")
	}
	for name, n := range map[string]*int{"OutboxLimit": &opts.OutboxLimit, "InFlight": &opts.InFlight, "MaxReport": &opts.MaxReport} {
		if *n < 0 {
			return nil, fmt.Errorf("fleet: DeviceOptions.%s is negative (%d); use 0 for the default", name, *n)
		}
	}
	if opts.OutboxLimit == 0 {
		opts.OutboxLimit = DefaultOutboxLimit
	}
	if opts.InFlight == 0 {
		opts.InFlight = DefaultInFlight
	}
	switch {
	case opts.MaxReport == 0:
		opts.MaxReport = MaxPayload
	case opts.MaxReport > MaxPayload:
		return nil, fmt.Errorf("fleet: DeviceOptions.MaxReport is %d bytes, over the %d-byte limit of every payload (MaxPayload); use at most that, or 0 for it", opts.MaxReport, MaxPayload)
	case opts.MaxReport < minReport:
		return nil, fmt.Errorf("fleet: DeviceOptions.MaxReport is %d bytes; use at least %d, or a broker that takes reports that large", opts.MaxReport, minReport)
	}
	t := opts.Topics
	groups := map[string]string{}
	for _, g := range opts.Groups {
		if p := idProblem(g); p != "" {
			return nil, fmt.Errorf("fleet: group %q: %s", g, p)
		}
		groups[t.GroupTarget(g)] = GroupScope(g)
	}
	modules := map[string]string{}
	for _, m := range opts.Modules {
		if p := idProblem(m); p != "" {
			return nil, fmt.Errorf("fleet: module %q: %s", m, p)
		}
		modules[t.Module(m)] = m
	}
	agent := ""
	if opts.AgentArch != "" {
		if err := ValidArch(opts.AgentArch); err != nil {
			return nil, err
		}
		agent = t.Agent(opts.AgentArch)
	}
	log := orDiscard(opts.Logger).With("broker", strings.Join(brokers, ","), "device", opts.Device)
	out, err := openOutbox(opts.Store, opts.OutboxLimit, log)
	if err != nil {
		return nil, err
	}
	d := &Device{
		opts:         opts,
		brokers:      brokers,
		log:          log,
		out:          out,
		strikes:      map[uint64]int{},
		firstAttempt: make(chan struct{}),
		stateWake:    make(chan struct{}, 1),
		wanted:       map[string]fetchItem{},
		settled:      map[string]string{},
		asked:        map[string]struct{}{},
		fetchWake:    make(chan struct{}, 1),
		chunkIn:      make(chan chunkMsg, 2*fetchWindow),
		target:       t.DeviceTarget(opts.Device),
		state:        t.State(opts.Device),
		events:       t.Events(opts.Device),
		online:       t.Online(opts.Device),
		targets:      make(chan ScopedTarget, 1+len(groups)),
		groupTopics:  groups,
		moduleTopics: modules,
		releases:     make(chan ReleaseEnvelope, max(1, len(modules))),
		agents:       make(chan AgentRelease, 1),
		agent:        agent,
		refusals:     make(chan Refusal, refusalBuffer),
		jobPending:   map[string]ScopedJob{},
		jobStats:     map[string][]byte{},
		jobWake:      make(chan struct{}, 1),
		ctlPending:   map[string]ReceivedControl{},
		ctlWake:      make(chan struct{}, 1),
		dry:          dryRunInbox{wake: make(chan struct{}, 1)},
	}
	d.limit.Store(int64(opts.MaxReport))
	return d, nil
}

// Targets delivers the target envelopes received on the device's target
// topic (and its groups'), the retained one included, each parsed and made
// for this device's fleet and topic prefix; their signature and version
// are for the consumer to check. It never blocks the MQTT client: it
// holds one envelope, and when a new one arrives before the consumer took
// the last, it keeps the higher version (targets supersede each other).
// Expect redelivery: the retained envelope comes again after each
// reconnect. The channel is closed when Run returns.
func (d *Device) Targets() <-chan ScopedTarget { return d.targets }

// Releases delivers the module releases received on the topics of the
// modules in DeviceOptions.Modules, the retained ones included. A chunked
// release comes whole once its chunks are fetched, except one under a
// rollout: its manifest comes (without code), and FetchRelease fetches it
// when the rollout lets it through. Like
// Targets it never blocks the MQTT client: it holds one release per
// module, the highest version. Each release is parsed (size, format,
// hash) and made for this device's fleet and topic prefix (CheckTopics),
// but its signature and version are for the consumer to check, as it
// holds the trust store and the versions accepted. Expect redelivery after
// each reconnect. The channel is closed when Run returns.
func (d *Device) Releases() <-chan ReleaseEnvelope { return d.releases }

// AgentReleases delivers the agent releases received on the topic of
// DeviceOptions.AgentArch, like Releases: one held, the highest version,
// parsed but not verified. The channel is closed when Run returns.
func (d *Device) AgentReleases() <-chan AgentRelease { return d.agents }

// Refusals delivers the messages on the target and module topics that are
// not valid envelopes, so the agent can report them (a target.refused or
// module.refused event). It holds the 16 newest; older ones are dropped
// and logged. The channel is closed when Run returns. An empty message (a
// cleared retained target or release) is neither an envelope nor a
// refusal: it is logged and ignored.
func (d *Device) Refusals() <-chan Refusal { return d.refusals }

// FirstAttempt is closed when Run's first connection attempt ended:
// connected and subscribed (Connected is true then), or failed; or when
// Run returned. ternd's boot grace waits for it before it acts on a stored
// target.
func (d *Device) FirstAttempt() <-chan struct{} { return d.firstAttempt }

func (d *Device) firstAttemptEnded() { d.firstAttemptOnce.Do(func() { close(d.firstAttempt) }) }

// Connected reports whether the connection to the broker is up right now.
func (d *Device) Connected() bool {
	c := d.client.Load()
	return c != nil && (*c).IsConnectionOpen()
}

// Run connects to the broker and keeps the connection until ctx is done,
// then publishes online=false, disconnects and returns nil. It never fails
// because the broker is down: it retries in the background with backoff
// (see DeviceOptions.MaxRetryInterval) and reconnects after every loss, so
// the agent keeps working offline. On every connect it subscribes to the
// target topic and publishes online=true; the broker publishes
// online=false, the last will, if the connection dies. Run may be called
// once.
func (d *Device) Run(ctx context.Context) error {
	if !d.ran.CompareAndSwap(false, true) {
		return errors.New("fleet: Device.Run called twice; create a new Device with NewDevice")
	}
	defer d.closeChannels()
	defer d.firstAttemptEnded()
	var senders sync.WaitGroup
	defer senders.Wait()
	senders.Go(func() { d.out.sweep(ctx) })
	d.log.Info("fleet: connecting to broker", "client_id", d.opts.ClientID)

	// Each connection gets a new paho client, so nothing of a lost
	// connection (a publish paho still held) can be sent on the next one,
	// where it would overtake the reports sent again from the outbox and
	// break their order. The broker keeps the session across them: the
	// client id stays and clean session is off.
	var lastWarn time.Time
	for delay := time.Duration(0); ; {
		if !sleep(ctx, delay) {
			return nil
		}
		lost := make(chan struct{}, 1)
		c := paho.NewClient(d.clientOptions(ctx, lost))
		// The routes must exist before connecting: the broker delivers
		// what the persistent session queued right after the handshake,
		// before announce subscribes again.
		c.AddRoute(d.target, d.onTarget)
		for topic := range d.groupTopics {
			c.AddRoute(topic, d.onTarget)
		}
		for topic := range d.moduleTopics {
			c.AddRoute(topic, d.onRelease)
			c.AddRoute(topic+"/chunks/+", d.onChunk)
		}
		if d.agent != "" {
			c.AddRoute(d.agent, d.onAgentRelease)
			c.AddRoute(d.agent+"/chunks/+", d.onChunk)
		}
		for topic, scope := range d.jobRoutes() {
			c.AddRoute(topic, d.onJob(scope))
		}
		c.AddRoute(d.opts.Topics.Rollout("+"), d.onRolloutControl)
		for topic, scope := range d.dryRunRoutes() {
			c.AddRoute(topic, d.onDryRun(scope))
		}
		d.conns.Add(1) // before anything arrives on the new connection
		d.heardMu.Lock()
		d.heard = map[string][][sha256.Size]byte{}
		d.heardMu.Unlock()
		tok := c.Connect()
		<-tok.Done() // bounded: the dial by ctx and ConnectTimeout, the handshake by ConnectTimeout
		err := tok.Error()
		if err == nil {
			d.client.Store(&c)
			// A stop during announce keeps the connection: stop sends the
			// last state report on it before it disconnects.
			if err = d.announce(ctx, c); err != nil && ctx.Err() == nil {
				c.Disconnect(0)
			}
			if err == nil {
				d.connected.Add(1)
			}
		}
		d.firstAttemptEnded()
		if ctx.Err() != nil {
			return d.stop(c)
		}
		if err != nil {
			delay = backoff(delay, d.opts.MaxRetryInterval)
			level := slog.LevelDebug
			if time.Since(lastWarn) >= 5*time.Minute { // the first failure, then now and then
				level, lastWarn = slog.LevelWarn, time.Now()
			}
			msg := "fleet: broker unreachable; the agent keeps working offline and retries"
			if errors.Is(err, errTLS) {
				msg = "fleet: TLS connection to the broker failed; fix the TLS files or the broker; the agent keeps working offline and retries"
			}
			d.log.Log(ctx, level, msg, "err", err, "retry_in", delay.Round(time.Millisecond))
			continue
		}

		session, endSession := context.WithCancel(ctx)
		sent := make(chan struct{})
		senders.Go(func() { d.sendReports(session, c, lost); close(sent) })
		senders.Go(func() { d.fetch(session, c) })
		senders.Go(func() { d.refreshTargets(session, c) })
		select {
		case <-ctx.Done():
			endSession()
			<-sent // stop sends the last state; nothing may overtake it
			return d.stop(c)
		case <-lost:
		}
		endSession()
		c.Disconnect(0)
		signal(d.ctlWake) // rollouts wait for the next connection
		d.failOver()
		// Reconnect soon, but not in lock step with a fleet that lost the
		// same broker.
		delay = time.Duration(rand.Int64N(int64(min(time.Second, d.opts.MaxRetryInterval)) + 1))
	}
}

// connectedTo is the broker of the current (or last) connection.
func (d *Device) connectedTo() string {
	s, _ := d.at.Load().(string)
	return s
}

// failOver makes the next connection try first the broker after the one
// it lost: a dead node of a cluster is not waited for again.
func (d *Device) failOver() {
	if len(d.brokers) < 2 {
		return
	}
	at := d.connectedTo()
	for i, b := range d.brokers {
		if sameBroker(b, at) {
			d.next.Store(int32((i + 1) % len(d.brokers)))
			return
		}
	}
}

// sameBroker reports whether paho's URL of a connection, u, is broker.
func sameBroker(broker, u string) bool {
	a, err1 := url.Parse(broker)
	b, err2 := url.Parse(u)
	return err1 == nil && err2 == nil && a.Scheme == b.Scheme && a.Host == b.Host
}

// clientOptions builds paho's options for one connection. Dials are bound
// to ctx, the lifetime of Run; lost is signalled when the connection dies.
func (d *Device) clientOptions(ctx context.Context, lost chan<- struct{}) *paho.ClientOptions {
	o := paho.NewClientOptions()
	// paho tries the brokers in the order given, until one answers.
	first := int(d.next.Load())
	for i := range d.brokers {
		o.AddBroker(d.brokers[(first+i)%len(d.brokers)])
	}
	open := openConn(ctx, d.opts.ConnectTimeout, d.opts.Dial, d.opts.TLS)
	o.SetClientID(d.opts.ClientID).
		SetUsername(d.opts.Username).
		SetPassword(d.opts.Password).
		SetCleanSession(false). // persistent session: QoS 1 messages wait for us while we are away
		SetStore(noStore{}).    // no automatic resend of our publishes: the outbox does it
		SetOrderMatters(true).  // handlers run one at a time, in order; ours never block
		SetKeepAlive(d.opts.KeepAlive).
		SetPingTimeout(min(d.opts.KeepAlive, 10*time.Second)).
		SetConnectTimeout(d.opts.ConnectTimeout).
		SetWriteTimeout(d.opts.ConnectTimeout).
		SetConnectRetry(false). // Run retries, with a new client
		SetAutoReconnect(false).
		SetBinaryWill(d.online, []byte(onlineFalse), qos, true).
		SetCustomOpenConnectionFn(func(u *url.URL, po paho.ClientOptions) (net.Conn, error) {
			conn, err := open(u, po)
			if err == nil {
				d.at.Store(u.String())
			}
			return conn, err
		}).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			d.log.Debug("fleet: ignoring message on unexpected topic", "topic", m.Topic())
		}).
		SetOnConnectHandler(func(paho.Client) {
			d.log.Info("fleet: connected to broker", "at", d.connectedTo())
		}).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			d.log.Warn("fleet: lost connection to broker; reconnecting", "err", err)
			signal(lost)
		})
	return o
}

// announce runs after every connect: it (re)subscribes to the target topic,
// which also makes the broker resend the retained target, and publishes
// online=true.
//
// Everything a device subscribes to is retained state (targets, release
// manifests, chunks), and it subscribes at QoS 0: the broker resends
// every retained message at each subscription, which follows every
// connection, so copies queued while the device was away (QoS 1) would
// only repeat it. A QoS 1 subscription costs a NATS cluster a replicated
// JetStream consumer per topic per device; QoS 0 costs nothing beyond the
// session (docs/mqtt.md, NATS). It subscribes twice: nats-server indexes
// a retained message some milliseconds after acknowledging it, and a
// device subscribing in that gap would otherwise wait for its next
// connection; the second pass, a round trip later, finds it. Job topics
// come last, once (subscribeJobs).
func (d *Device) announce(ctx context.Context, c paho.Client) error {
	ctx, cancel := context.WithTimeout(ctx, d.opts.ConnectTimeout)
	defer cancel()
	d.jobMu.Lock()
	d.jobDropped = 0 // a full queue is said once per connection
	d.jobMu.Unlock()
	topics := append([]string{d.target}, sortedKeys(d.groupTopics)...)
	topics = append(topics, sortedKeys(d.moduleTopics)...)
	// Rollout controls first: a change a rollout governs waits for its
	// control on this connection (docs/rollouts.md).
	optional := []string{d.opts.Topics.Rollout("+")}
	if d.agent != "" {
		optional = append(optional, d.agent)
	}
	for range 2 {
		if err := subscribeAt(ctx, c, stateQoS, topics...); err != nil {
			return fmt.Errorf("fleet: subscribe to %s: %w", strings.Join(topics, ", "), err)
		}
		// Agent releases and jobs are optional: a broker whose ACL
		// predates them (no read on <prefix>/<fleet>/agent/+, or on the
		// job topics) must not keep the device offline.
		kept := optional[:0]
		for _, topic := range optional {
			if err := subscribeAt(ctx, c, stateQoS, topic); err != nil {
				if ctx.Err() != nil || !c.IsConnectionOpen() {
					return fmt.Errorf("fleet: subscribe to %s: %w", topic, err)
				}
				d.log.Warn("fleet: the broker refused the subscription, so nothing comes on it; let devices read it (see firmware/mosquitto/acl.conf, tern broker acl)", "topic", topic, "err", err)
				continue
			}
			kept = append(kept, topic)
		}
		optional = kept
	}
	if err := waitToken(ctx, c, c.Publish(d.online, qos, true, onlineTrue)); err != nil {
		return fmt.Errorf("fleet: publish online=true on %s: %w", d.online, err)
	}
	d.subscribeJobs(c)
	d.subscribeDryRuns(c)
	signal(d.ctlWake) // connected: rollouts may go on
	d.log.Debug("fleet: subscribed and online", "target_topic", d.target)
	return nil
}

// DefaultTargetRefresh is DeviceOptions.TargetRefresh's default.
const DefaultTargetRefresh = 5 * time.Minute

// refreshSoon are the times after a connection at which the device asks
// again for its retained targets, before TargetRefresh takes over: a
// cluster that lost the node the device was on elects new stream leaders
// in a few seconds, and its retained index catches up after that.
var refreshSoon = []time.Duration{2 * time.Second, 8 * time.Second, 30 * time.Second}

// refreshTargets subscribes again to the target and rollout topics while
// the connection lasts (DeviceOptions.TargetRefresh): the broker resends
// what it retains, and a target the device holds already is dropped as a
// repeat. Release topics are not asked again: a format 2 release is a
// whole module, megabytes to resend. Each wait is jittered by up to a
// fifth, so a fleet that connected together does not ask together.
func (d *Device) refreshTargets(ctx context.Context, c paho.Client) {
	if d.opts.TargetRefresh < 0 {
		return
	}
	topics := append([]string{d.target}, sortedKeys(d.groupTopics)...)
	topics = append(topics, d.opts.Topics.Rollout("+"))
	m := make(map[string]byte, len(topics))
	for _, t := range topics {
		m[t] = stateQoS
	}
	var elapsed time.Duration
	for {
		next := elapsed + d.opts.TargetRefresh
		for _, soon := range refreshSoon {
			if soon > elapsed {
				next = min(next, soon)
				break
			}
		}
		wait := next - elapsed
		elapsed = next
		wait += time.Duration(rand.Int64N(int64(wait)/5 + 1))
		if !sleep(ctx, wait) {
			return
		}
		// Not held on the acknowledgement: a refused or lost subscription
		// changes nothing, the next refresh or connection asks again.
		c.SubscribeMultiple(m, nil)
	}
}

// subscribeJobs subscribes to the device's job topics last, once, and
// does not hold the connection on the acknowledgement: a broker may
// retain any number of jobs for a device, all sent at once after the
// subscription, and a device slow to take 10,000 of them must not time out
// its connection over it and get them all again. A broker whose ACL
// predates jobs refuses the subscription: said at Warn, the device stays
// connected.
func (d *Device) subscribeJobs(c paho.Client) {
	d.subscribeUnheld(c, d.jobRoutes(), "job", "nothing comes on it")
}

// subscribeUnheld subscribes to the topics of routes at QoS 0 without
// holding the connection on the acknowledgement; a refusal (a broker
// whose ACL predates them) is said at Warn: the device stays connected,
// and what would come on them (what) does not.
func (d *Device) subscribeUnheld(c paho.Client, routes map[string]string, what, refused string) {
	topics := sortedKeys(routes)
	m := make(map[string]byte, len(topics))
	for _, t := range topics {
		m[t] = stateQoS
	}
	tok := c.SubscribeMultiple(m, nil)
	go func() {
		<-tok.Done()
		st, ok := tok.(*paho.SubscribeToken)
		if tok.Error() != nil || !ok {
			d.log.Debug("fleet: "+what+" subscription not acknowledged; the next connection subscribes again", "err", tok.Error())
			return
		}
		for _, t := range topics {
			if code := st.Result()[t]; code > stateQoS {
				d.log.Warn("fleet: the broker refused the subscription, so "+refused+"; let devices read it (see firmware/mosquitto/acl.conf, tern broker acl)", "topic", t, "code", code)
			}
		}
	}()
}

// stop says goodbye: the pending state report, then online=false (the
// broker drops the last will on a clean disconnect), then disconnects.
func (d *Device) stop(c paho.Client) error {
	if c.IsConnectionOpen() {
		ctx, cancel := context.WithTimeout(context.Background(), min(d.opts.ConnectTimeout, 2*time.Second))
		// The last state report goes out before the device says it left
		// (a state reported just before the stop would otherwise wait for
		// the next start); events wait in the outbox.
		if err := d.sendState(ctx, c); err != nil {
			d.log.Warn("fleet: the last state report waits for the next start", "err", err)
		}
		if err := waitToken(ctx, c, c.Publish(d.online, qos, true, onlineFalse)); err != nil {
			d.log.Warn("fleet: cannot publish online=false; the broker will not say the device left", "err", err)
		}
		cancel()
	}
	c.Disconnect(250)
	d.log.Info("fleet: stopped; disconnected from broker")
	return nil
}

// onTarget runs on paho's delivery goroutine: it must not block.
func (d *Device) onTarget(_ paho.Client, m paho.Message) {
	if len(m.Payload()) == 0 {
		d.log.Info("fleet: retained target cleared on the broker; keeping the current target", "topic", m.Topic())
		return
	}
	if d.opts.lostTargets != nil && d.opts.lostTargets.Add(-1) >= 0 {
		return // a test stands in for a broker that served it late
	}
	if d.heardOnConn(m.Topic(), m.Payload()) && m.Retained() {
		// Sent again because the device subscribed again (the second
		// subscription, a refresh), not published again: a replay
		// published live is parsed, and refused as what it is.
		d.log.Debug("fleet: retained target repeated on this connection; dropped", "topic", m.Topic())
		return
	}
	env, err := ParseTargetEnvelope(m.Payload())
	if err == nil {
		err = env.CheckTopics(d.opts.Topics)
	}
	if err != nil {
		d.log.Warn("fleet: refusing target", "topic", m.Topic(), "err", err)
		d.refuse(Refusal{Topic: m.Topic(), Err: err})
		return
	}
	scope := DeviceScope(d.opts.Device)
	if s, ok := d.groupTopics[m.Topic()]; ok {
		scope = s
	}
	d.log.Debug("fleet: target received", "scope", scope, "version", env.Version)
	d.offerTarget(ScopedTarget{Scope: scope, TargetEnvelope: env})
}

// heardPerTopic bounds the payloads heardOnConn remembers per topic.
const heardPerTopic = 4

// heardOnConn reports whether payload came on topic on this connection
// (among the last heardPerTopic that did), and records it.
func (d *Device) heardOnConn(topic string, payload []byte) bool {
	h := sha256.Sum256(payload)
	d.heardMu.Lock()
	defer d.heardMu.Unlock()
	if slices.Contains(d.heard[topic], h) {
		return true
	}
	hs := append(d.heard[topic], h)
	if len(hs) > heardPerTopic {
		hs = hs[1:]
	}
	d.heard[topic] = hs
	return false
}

// onRelease runs on paho's delivery goroutine: it must not block.
func (d *Device) onRelease(_ paho.Client, m paho.Message) {
	name := d.moduleTopics[m.Topic()]
	if len(m.Payload()) == 0 {
		d.log.Info("fleet: retained release cleared on the broker; keeping the installed module", "topic", m.Topic())
		return
	}
	env, err := ParseReleaseEnvelope(m.Payload())
	if err == nil && env.Module != name {
		err = newError(ErrMalformed, nil, "fleet: module release of %s published on the topic of module %s (%s); publish it on %s",
			env.Module, name, m.Topic(), d.opts.Topics.Module(env.Module))
	}
	if err == nil {
		err = env.CheckTopics(d.opts.Topics)
	}
	if err != nil {
		d.log.Warn("fleet: refusing module release", "topic", m.Topic(), "err", err)
		d.refuse(Refusal{Topic: m.Topic(), Module: name, Err: err})
		return
	}
	if env.Format == ChunkedFormat && env.Rollout != nil {
		// Its rollout decides when: the consumer fetches it then
		// (FetchRelease), so a device of the last wave does not download
		// it with the first, nor a device of an aborted rollout at all.
		d.log.Debug("fleet: chunked module release under a rollout received", "module", name, "version", env.Version, "rollout", env.Rollout.ID)
		d.offerRelease(env)
		return
	}
	if env.Format == ChunkedFormat {
		d.log.Debug("fleet: chunked module release received", "module", name, "version", env.Version, "size", env.Size, "chunks", len(env.Chunks.SHA256))
		d.want(env.fetchItem(d.opts.Topics, d.offerRelease))
		return
	}
	d.log.Debug("fleet: module release received", "module", name, "version", env.Version, "size", env.Size)
	d.offerRelease(env)
}

// onAgentRelease runs on paho's delivery goroutine: it must not block.
func (d *Device) onAgentRelease(_ paho.Client, m paho.Message) {
	if len(m.Payload()) == 0 {
		d.log.Info("fleet: retained agent release cleared on the broker; keeping the running agent", "topic", m.Topic())
		return
	}
	r, err := ParseAgentRelease(m.Payload())
	if err == nil && r.Arch != d.opts.AgentArch {
		err = newError(ErrMalformed, nil, "fleet: agent release for %s published on the topic of %s (%s); publish it on %s",
			r.Arch, d.opts.AgentArch, m.Topic(), d.opts.Topics.Agent(r.Arch))
	}
	if err == nil {
		err = r.CheckTopics(d.opts.Topics)
	}
	if err != nil {
		d.log.Warn("fleet: refusing agent release", "topic", m.Topic(), "err", err)
		d.refuse(Refusal{Topic: m.Topic(), Agent: true, Err: err})
		return
	}
	if r.Format == ChunkedFormat {
		d.log.Debug("fleet: chunked agent release received", "arch", r.Arch, "version", r.Version, "size", r.Size, "chunks", len(r.Chunks.SHA256))
		d.want(r.fetchItem(d.opts.Topics, d.offerAgent))
		return
	}
	d.log.Debug("fleet: agent release received", "arch", r.Arch, "version", r.Version, "size", r.Size)
	d.offerAgent(r)
}

// FetchRelease fetches the chunks of a release manifest that Releases
// delivered without its code (a chunked release under a rollout: format
// ChunkedFormat, Wasm nil), and delivers the whole release on Releases
// once they are all in. The fetch goes on across connections, as for any
// chunked release.
func (d *Device) FetchRelease(manifest ReleaseEnvelope) {
	if manifest.Format != ChunkedFormat || manifest.Chunks == nil {
		return
	}
	d.want(manifest.fetchItem(d.opts.Topics, d.offerRelease))
}

// offerAgent is offerTarget for agent releases.
func (d *Device) offerAgent(r AgentRelease) {
	offer(d, d.agents, r, "agent release", func(r AgentRelease) (string, uint64) { return r.Arch, r.Version })
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// offerTarget puts env in the targets channel without blocking. The
// channel has a slot per scope; when it is full, it keeps, per scope, the
// higher version (targets of one scope supersede each other).
func (d *Device) offerTarget(env ScopedTarget) {
	offer(d, d.targets, env, "target", func(t ScopedTarget) (string, uint64) { return t.Scope, t.Version })
}

// offerRelease is offerTarget for releases, with a slot per module.
func (d *Device) offerRelease(env ReleaseEnvelope) {
	offer(d, d.releases, env, "module release", func(r ReleaseEnvelope) (string, uint64) { return r.Module, r.Version })
}

// offer puts v in ch without blocking. When ch is full, it keeps the
// highest version per key (scope or module) of what ch held and v.
func offer[T any](d *Device, ch chan T, v T, what string, keyOf func(T) (string, uint64)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	select {
	case ch <- v:
		return
	default:
	}
	k, _ := keyOf(v)
	held := map[string]T{k: v}
	order := []string{k}
drain: // the consumer may take one meanwhile: never block here
	for {
		select {
		case old := <-ch:
			ok, ov := keyOf(old)
			if cur, seen := held[ok]; !seen {
				held[ok] = old
				order = append(order, ok)
			} else if _, cv := keyOf(cur); ov > cv {
				held[ok] = old
			}
		default:
			break drain
		}
	}
	for _, k := range order {
		select {
		case ch <- held[k]:
		default:
			d.log.Warn("fleet: "+what+" dropped: more sources than slots", "from", k)
		}
	}
}

// refuse queues r without blocking, dropping the oldest refusal if full.
func (d *Device) refuse(r Refusal) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	for {
		select {
		case d.refusals <- r:
			return
		default:
		}
		select {
		case old := <-d.refusals:
			d.log.Warn("fleet: too many refusals waiting; dropping the oldest", "topic", old.Topic, "err", old.Err)
		default:
		}
	}
}

func (d *Device) closeChannels() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	close(d.targets)
	close(d.releases)
	close(d.agents)
	close(d.refusals)
}

// PublishState hands s to the device's reporter, which publishes it as
// the device's StateReport, retained, QoS 1, as soon as it is connected and
// the event reports before it have gone out. Only the latest state waits: a
// newer one replaces it. A report that cannot be encoded or is too large
// (DeviceOptions.MaxReport) goes out cut, "truncated": true, and is
// logged at Warn; PublishState does not fail.
func (d *Device) PublishState(_ context.Context, s api.Status) error {
	whole, err := json.Marshal(StateReport{Format: ReportFormat, Device: d.opts.Device, Groups: d.opts.Groups, Status: s})
	d.stateMu.Lock()
	if err != nil && !d.stateUnencodable {
		// Said here, at Warn, once until one encodes again: the agent
		// sees no error, as the cut report goes out.
		d.log.Warn("fleet: state report cannot be encoded; it goes out without its state, truncated", "kind", "state report", "err", err)
	}
	d.stateUnencodable = err != nil
	if err != nil {
		whole = nil
	}
	d.pending = &stateReport{status: s, whole: whole}
	d.stateGen++
	d.stateMu.Unlock()
	signal(d.stateWake)
	return nil
}

// statePayload returns what to publish for p: the whole report if it fits
// the limit, else the report cut (see cutState), said at Warn once until a
// whole one goes out again. Call with stateMu held.
func (d *Device) statePayload(p *stateReport) []byte {
	limit := d.reportLimit()
	if p.whole != nil && len(p.whole) <= limit {
		d.stateCut = false
		return p.whole
	}
	b := d.cutState(p.status, limit)
	if !d.stateCut {
		d.stateCut = true
		why := "cannot be encoded"
		if p.whole != nil {
			why = fmt.Sprintf("is %d bytes, over the %d-byte limit of a report", len(p.whole), limit)
		}
		d.log.Warn("fleet: state report "+why+"; it goes out without its state, truncated; the whole state follows",
			"kind", "state report", "size", len(p.whole), "limit", limit, "sent", len(b), "state", string(p.status.State))
	}
	return b
}

// cutState encodes s "truncated": true without what does not fit limit,
// leaving out, until the rest fits: the state; the plan graph; the
// metrics summary; and then keeping only its short fields (time, target
// version, converged, phase, groups, the agent's inventory, the facts)
// with the error cut short; and last the facts. The inventory and the
// facts go last: they are what tern inventory and every --where select
// by, and they are bounded (a few hundred bytes; api.MaxFacts facts).
func (d *Device) cutState(s api.Status, limit int) []byte {
	if !encodable(s.Time) {
		s.Time = time.Now().UTC()
	}
	s.State, s.Truncated = nil, true
	if s.Agent != nil {
		ag := *s.Agent
		ag.Version, ag.Arch, ag.Board, ag.Kernel, ag.Store = cut(ag.Version, 128), cut(ag.Arch, 32), cut(ag.Board, 128), cut(ag.Kernel, 128), cut(ag.Store, 32)
		if !encodable(ag.Started) {
			ag.Started = time.Time{}
		}
		if !encodable(ag.Boot) {
			ag.Boot = time.Time{}
		}
		s.Agent = &ag
	}
	if s.Metrics != nil && !encodable(s.Metrics.LastConverged) {
		m := *s.Metrics
		m.LastConverged = time.Time{}
		s.Metrics = &m
	}
	encode := func(s api.Status) ([]byte, bool) {
		b, err := json.Marshal(StateReport{Format: ReportFormat, Device: d.opts.Device, Groups: d.opts.Groups, Status: s})
		return b, err == nil && len(b) <= limit
	}
	if b, ok := encode(s); ok {
		return b
	}
	s.Plan = nil
	if b, ok := encode(s); ok {
		return b
	}
	s.Metrics = nil
	if b, ok := encode(s); ok {
		return b
	}
	short := api.Status{Time: s.Time, TargetVersion: s.TargetVersion, Converged: s.Converged, Phase: s.Phase,
		Error: cut(s.Error, 1024), Agent: s.Agent, Facts: s.Facts, Truncated: true}
	if b, ok := encode(short); ok {
		return b
	}
	short.Facts = nil
	b, _ := encode(short) // every field bounded and encodable
	return b
}

// PublishEvent stores e in the outbox, numbered (EventReport.Seq), and
// returns: the report is on the disk and goes out, in order, once the
// broker is reachable, however long that takes and across restarts. An
// event that cannot be encoded or is too large (DeviceOptions.MaxReport)
// is stored as a marker under its Seq (see marker), and logged whole at
// Warn, once. It fails only if the store fails.
func (d *Device) PublishEvent(_ context.Context, e api.Event) error {
	return d.out.append(func(epoch string, seq uint64) ([]byte, error) {
		r := EventReport{Format: ReportFormat, Device: d.opts.Device, Epoch: epoch, Seq: seq, Event: e}
		b, err := json.Marshal(r)
		limit := d.reportLimit()
		var why string
		switch {
		case err != nil:
			why = fmt.Sprintf("event could not be encoded (%s)", cut(err.Error(), 256))
		case len(b) > limit:
			why = fmt.Sprintf("event too large to send (%d bytes, over the %d-byte limit of a report)", len(b), limit)
		default:
			return b, nil
		}
		d.log.Warn("fleet: event report cut to a marker: "+why+"; the whole event follows",
			"seq", seq, "kind", e.Kind, "size", len(b), "id", e.ID, "time", e.Time, "target_version", e.TargetVersion,
			"module", e.Module, "job", e.Job, "path", e.Path, "message", e.Message)
		return marker(r, why, limit), nil
	})
}

// Bounds of the fields a marker keeps of the event it stands in for.
const (
	markerName = 128 // id, kind, module, job
	markerPath = 512
)

// marker is the event report that stands in for r, which cannot be sent as
// it is (why): the same Seq, epoch, id, time, kind, target version,
// module, job and path (each cut short if long), a message that says why
// and where the whole event is, and "truncated": true. It fits limit,
// which is at least minReport.
func marker(r EventReport, why string, limit int) []byte {
	e := r.Event
	m := EventReport{Format: ReportFormat, Device: r.Device, Epoch: r.Epoch, Seq: r.Seq, Event: api.Event{
		ID: cut(e.ID, markerName), Time: e.Time, Kind: api.EventKind(cut(string(e.Kind), markerName)),
		TargetVersion: e.TargetVersion, Module: cut(e.Module, markerName), Job: cut(e.Job, markerName), Path: cut(e.Path, markerPath),
		Message: why + "; full text in the device log", Truncated: true,
	}}
	if m.Kind == "" { // every report has a kind; this one's could not be read
		m.Kind = api.EventReportsDropped
	}
	if !encodable(m.Time) {
		m.Time = time.Now().UTC()
	}
	b, err := json.Marshal(m)
	if err != nil || len(b) > limit {
		// Names escaped at six bytes a character: keep what must stay.
		m.Module, m.Job, m.Path = "", "", ""
		b, _ = json.Marshal(m) // every field bounded and encodable
	}
	return b
}

// encodable reports whether t has a JSON encoding (RFC 3339: years 0 to
// 9999).
func encodable(t time.Time) bool {
	y := t.Year()
	return y >= 0 && y <= 9999
}

// cut returns s cut to at most n bytes at a UTF-8 boundary, ending in "…".
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n - len("…")
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// reportLimit is the largest report sent whole now.
func (d *Device) reportLimit() int { return int(d.limit.Load()) }

// learnLimit records that the broker refused a report of n bytes: reports
// as large are cut from now on, at once.
func (d *Device) learnLimit(n int, kind string) {
	for {
		cur := d.limit.Load()
		if int64(n) > cur {
			return // cut already
		}
		if d.limit.CompareAndSwap(cur, int64(n-1)) {
			break
		}
	}
	d.log.Warn(fmt.Sprintf("fleet: the broker dropped the connection each of the %d times a report of %d bytes was in flight: it refuses reports that large; from now on reports of %d bytes or more are cut; set max_report below the broker's message size limit", refusalStrikes, n, n),
		"kind", kind, "size", n)
}

// sendable returns what to publish for the stored report r: r itself, or,
// if it can never be sent (over the limit, refused by the broker), a
// marker, which replaces it in the outbox under the same Seq. It fails
// only if the store fails.
func (d *Device) sendable(r pendingReport) ([]byte, error) {
	n := len(r.payload)
	d.strikeMu.Lock()
	refused := d.strikes[r.seq] >= refusalStrikes
	d.strikeMu.Unlock()
	if !refused && n <= d.reportLimit() {
		return r.payload, nil
	}
	var orig EventReport
	_ = json.Unmarshal(r.payload, &orig) // what can be read of it: kind, id, names
	why := fmt.Sprintf("event too large to send (%d bytes, over the %d-byte limit of a report)", n, d.reportLimit())
	if refused {
		d.learnLimit(n, "event report "+string(orig.Kind))
		why = fmt.Sprintf("event refused by the broker (%d bytes: the connection dropped each of the %d times it was sent)", n, refusalStrikes)
	}
	orig.Format, orig.Device, orig.Seq = ReportFormat, d.opts.Device, r.seq
	if orig.Epoch == "" || len(orig.Epoch) > maxEpoch {
		orig.Epoch = d.out.epoch
	}
	m := marker(orig, why, d.reportLimit())
	if err := d.out.replace(r.seq, m); err != nil {
		return nil, err
	}
	d.log.Warn("fleet: event report in the outbox cut to a marker: "+why+"; the whole report follows",
		"seq", r.seq, "kind", orig.Kind, "size", n, "report", string(r.payload))
	return m, nil
}

// struck counts a lost connection against the largest report in flight,
// if it is over strikeFloor: the one a broker with a size limit refused.
func (d *Device) struck(window []inFlight) {
	big := -1
	for i, f := range window {
		if f.size > strikeFloor && (big < 0 || f.size > window[big].size) {
			big = i
		}
	}
	if big < 0 {
		return
	}
	d.strikeMu.Lock()
	d.strikes[window[big].seq]++
	d.strikeMu.Unlock()
}

// cleared forgets the strikes of the reports up to seq: acknowledged.
func (d *Device) cleared(seq uint64) {
	d.strikeMu.Lock()
	for s := range d.strikes {
		if s <= seq {
			delete(d.strikes, s)
		}
	}
	d.strikeMu.Unlock()
}

// Outbox returns the Seq of the last event report the broker acknowledged
// and how many reports wait after it.
func (d *Device) Outbox() (acked, pending uint64) { return d.out.position() }

// Reconnects counts the connections to the broker set up after the first
// since NewDevice: each one follows a lost connection (or a failed
// subscription), a sign of a flaky link or broker.
func (d *Device) Reconnects() uint64 {
	if n := d.connected.Load(); n > 1 {
		return n - 1
	}
	return 0
}

// sendReports publishes the outbox and the state report on one
// connection, until ctx (the session) is done or the connection is lost.
// A publish that failed while the connection still looks open (paho gave
// up writing it) ends the connection too, through lost: reports after it
// must not go out before it, so the next connection sends again from the
// first one not acknowledged.
func (d *Device) sendReports(ctx context.Context, c paho.Client, lost chan<- struct{}) {
	for {
		err := d.drain(ctx, c)
		if ctx.Err() != nil {
			return
		}
		if lostConnection(err) {
			if c.IsConnectionOpen() {
				d.log.Warn("fleet: a report could not be sent; reconnecting to send it again, in order", "err", err)
			} else {
				d.log.Debug("fleet: reports wait for the next connection", "err", err)
			}
			signal(lost)
			return
		}
		// The store failed: say so, and try again after a while.
		d.log.Error("fleet: cannot send reports; retrying", "err", err)
		if !sleep(ctx, time.Second) {
			return
		}
	}
}

// drain publishes the outbox in order, keeping up to InFlight reports
// awaiting acknowledgement, and the pending state report whenever no event
// report is waiting. It returns when the connection is lost (an error
// matching ErrOffline), the store fails, or ctx is done.
func (d *Device) drain(ctx context.Context, c paho.Client) error {
	if !c.IsConnectionOpen() {
		return ErrOffline
	}
	var window []inFlight
	sent, _ := d.out.position()
	d.cleared(sent) // acknowledged, or dropped from a full outbox
	for {
		if free := d.opts.InFlight - len(window); free > 0 {
			batch, err := d.out.read(sent, free)
			if err != nil {
				return err
			}
			for _, r := range batch {
				payload, err := d.sendable(r)
				if err != nil {
					return err
				}
				tok := c.Publish(d.events, qos, false, payload)
				window = append(window, inFlight{r.seq, len(payload), tok})
				if failed(tok) { // not sent: nothing after it may be
					d.struck(window)
					return newError(ErrOffline, tok.Error(), "fleet: publish of event report %d: %v", r.seq, tok.Error())
				}
				sent = r.seq
			}
		}
		if len(window) == 0 {
			if n := d.out.droppedCount(); n > 0 {
				if err := d.PublishEvent(ctx, api.Event{
					ID: api.NewEventID(), Time: time.Now().UTC(), Kind: api.EventReportsDropped,
					Message: fmt.Sprintf("%d event reports were dropped before the broker acknowledged them (it was unreachable or slow): the outbox holds at most %d; raise outbox_limit", n, d.opts.OutboxLimit),
				}); err != nil {
					return err
				}
				if err := d.out.toldDropped(n); err != nil {
					return err
				}
				continue
			}
			if err := d.sendState(ctx, c); err != nil {
				return err
			}
			if err := d.sendJobStatuses(ctx, c); err != nil {
				return err
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-d.out.wake:
			case <-d.stateWake:
			}
			continue
		}
		if err := d.waitAck(ctx, c, window[0].tok); err != nil {
			if lostConnection(err) || !c.IsConnectionOpen() { // the session may end first
				d.struck(window)
			}
			return err
		}
		n := 1 // acknowledge every completed report at the front at once
		for n < len(window) && completed(window[n].tok) {
			n++
		}
		if err := d.out.ack(window[n-1].seq); err != nil {
			return err
		}
		d.cleared(window[n-1].seq)
		window = window[n:]
	}
}

// inFlight is an event report published and not yet acknowledged.
type inFlight struct {
	seq  uint64
	size int
	tok  paho.Token
}

// failed reports whether tok is already done with an error.
func failed(tok paho.Token) bool {
	select {
	case <-tok.Done():
		return tok.Error() != nil
	default:
		return false
	}
}

// completed reports whether tok is done without error.
func completed(tok paho.Token) bool {
	select {
	case <-tok.Done():
		return tok.Error() == nil
	default:
		return false
	}
}

// sendState publishes the pending state report, if any, and waits for the
// acknowledgement.
func (d *Device) sendState(ctx context.Context, c paho.Client) error {
	d.stateMu.Lock()
	p, gen := d.pending, d.stateGen
	var b []byte
	if p != nil {
		b = d.statePayload(p)
	}
	d.stateMu.Unlock()
	if p == nil {
		return nil
	}
	if err := d.waitAck(ctx, c, c.Publish(d.state, qos, true, b)); err != nil {
		if (lostConnection(err) || !c.IsConnectionOpen()) && len(b) > strikeFloor { // the session may end first
			d.stateMu.Lock()
			d.stateStrikes++
			refused := d.stateStrikes >= refusalStrikes
			d.stateMu.Unlock()
			if refused {
				d.learnLimit(len(b), "state report") // the next one goes cut
			}
		}
		return err
	}
	d.stateMu.Lock()
	d.stateStrikes = 0
	if d.stateGen == gen { // not replaced meanwhile
		d.pending = nil
	}
	d.stateMu.Unlock()
	return nil
}

// waitAck waits for tok like waitToken, and says ErrOffline when the
// connection is lost: paho forgets what was in flight then (see noStore),
// so tok would never complete.
func (d *Device) waitAck(ctx context.Context, c paho.Client, tok paho.Token) error {
	tick := time.NewTicker(connectionWatch)
	defer tick.Stop()
	for {
		select {
		case <-tok.Done():
			if err := tok.Error(); err != nil {
				return newError(ErrOffline, err, "fleet: publish: %v", err)
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if !c.IsConnectionOpen() {
				if completed(tok) {
					return nil
				}
				return ErrOffline
			}
		}
	}
}

// sleep waits for d or ctx, and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// signal makes a coalescing send on ch, which has a buffer of one.
func signal(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
