package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tern-iot/tern/runtime"
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

// DeviceOptions configures a [Device]. Zero durations take the documented
// defaults.
type DeviceOptions struct {
	// Broker is the broker's address, tcp://host:port (port 1883 if left
	// out), or ssl://host:port for TLS (also tls://, mqtts://; port 8883 if
	// left out).
	Broker string
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
	Err   error
}

// Device is the device end of the fleet contract, used by ternd: it keeps a
// connection to the broker, hands target envelopes to the agent and
// publishes the agent's state and events. Create it with [NewDevice], then
// call [Device.Run]; the other methods are safe for concurrent use.
type Device struct {
	opts   DeviceOptions
	broker string
	log    *slog.Logger

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
	mu       sync.Mutex // serializes sends on targets and refusals with closing them
	closed   bool

	ran    atomic.Bool
	client atomic.Pointer[paho.Client]

	// Reports: events go through the durable outbox; the state report is
	// retained by the broker, so only the latest waits, in memory.
	out       *outbox
	sessionUp chan struct{} // the session was set up (after each connect); coalesced
	conns     atomic.Uint64 // counts connections; a change means in-flight publishes are lost
	stateMu   sync.Mutex    // guards pending and stateGen
	pending   []byte        // the latest state report not yet acknowledged, or nil
	stateGen  uint64        // counts PublishState calls
	stateWake chan struct{} // pending was set; coalesced
}

// NewDevice checks opts and returns a Device. It does not connect: that is
// Run's job.
func NewDevice(opts DeviceOptions) (*Device, error) {
	broker, err := brokerURL(opts.Broker)
	if err != nil {
		return nil, err
	}
	if err := checkTLS(broker, opts.TLS); err != nil {
		return nil, err
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
		// MQTT counts whole seconds, and some brokers (mochi) compute the
		// 1.5× grace in whole seconds too, which leaves none at 1s.
		return nil, fmt.Errorf("fleet: DeviceOptions.KeepAlive is %v; use at least 2s", opts.KeepAlive)
	}
	if opts.MaxRetryInterval == 0 {
		opts.MaxRetryInterval = DefaultMaxRetryInterval
	}
	if opts.Store == nil {
		return nil, errors.New("fleet: DeviceOptions.Store is nil; the device keeps its outbox there (open one with store.Open)")
	}
	for name, n := range map[string]*int{"OutboxLimit": &opts.OutboxLimit, "InFlight": &opts.InFlight} {
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
	log := orDiscard(opts.Logger).With("broker", broker, "device", opts.Device)
	out, err := openOutbox(opts.Store, opts.OutboxLimit, log)
	if err != nil {
		return nil, err
	}
	return &Device{
		opts:         opts,
		broker:       broker,
		log:          log,
		out:          out,
		stateWake:    make(chan struct{}, 1),
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
	}, nil
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
// modules in DeviceOptions.Modules, the retained ones included. Like
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
		}
		if d.agent != "" {
			c.AddRoute(d.agent, d.onAgentRelease)
		}
		tok := c.Connect()
		<-tok.Done() // bounded: the dial by ctx and ConnectTimeout, the handshake by ConnectTimeout
		err := tok.Error()
		if err == nil {
			d.client.Store(&c)
			if err = d.announce(ctx, c); err != nil {
				c.Disconnect(0)
			}
		}
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
		select {
		case <-ctx.Done():
			endSession()
			<-sent // stop sends the last state; nothing may overtake it
			return d.stop(c)
		case <-lost:
		}
		endSession()
		c.Disconnect(0)
		// Reconnect soon, but not in lock step with a fleet that lost the
		// same broker.
		delay = time.Duration(rand.Int64N(int64(min(time.Second, d.opts.MaxRetryInterval)) + 1))
	}
}

// clientOptions builds paho's options for one connection. Dials are bound
// to ctx, the lifetime of Run; lost is signalled when the connection dies.
func (d *Device) clientOptions(ctx context.Context, lost chan<- struct{}) *paho.ClientOptions {
	o := paho.NewClientOptions().
		AddBroker(d.broker).
		SetClientID(d.opts.ClientID).
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
		SetCustomOpenConnectionFn(openConn(ctx, d.opts.ConnectTimeout, d.opts.Dial, d.opts.TLS)).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			d.log.Debug("fleet: ignoring message on unexpected topic", "topic", m.Topic())
		}).
		SetOnConnectHandler(func(paho.Client) {
			d.log.Info("fleet: connected to broker")
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
func (d *Device) announce(ctx context.Context, c paho.Client) error {
	ctx, cancel := context.WithTimeout(ctx, d.opts.ConnectTimeout)
	defer cancel()
	topics := append([]string{d.target}, sortedKeys(d.groupTopics)...)
	for _, topic := range append(topics, sortedKeys(d.moduleTopics)...) {
		if err := subscribe(ctx, c, topic, nil); err != nil {
			return fmt.Errorf("fleet: subscribe to %s: %w", topic, err)
		}
	}
	// Agent releases are optional: a broker whose ACL predates them (no
	// read on <prefix>/<fleet>/agent/+) must not keep the device offline.
	if d.agent != "" {
		if err := subscribe(ctx, c, d.agent, nil); err != nil {
			if ctx.Err() != nil || !c.IsConnectionOpen() {
				return fmt.Errorf("fleet: subscribe to %s: %w", d.agent, err)
			}
			d.log.Warn("fleet: no agent updates: the broker refused the subscription; let devices read "+d.opts.Topics.Agent("+")+" (see firmware/mosquitto/acl.conf)", "topic", d.agent, "err", err)
		}
	}
	if err := waitToken(ctx, c, c.Publish(d.online, qos, true, onlineTrue)); err != nil {
		return fmt.Errorf("fleet: publish online=true on %s: %w", d.online, err)
	}
	d.log.Debug("fleet: subscribed and online", "target_topic", d.target)
	return nil
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
	d.log.Debug("fleet: agent release received", "arch", r.Arch, "version", r.Version, "size", r.Size)
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
// newer one replaces it. It fails only if s cannot be encoded.
func (d *Device) PublishState(_ context.Context, s runtime.Status) error {
	b, err := encode("state report", StateReport{Format: ReportFormat, Device: d.opts.Device, Groups: d.opts.Groups, Status: s})
	if err != nil {
		return err
	}
	d.stateMu.Lock()
	d.pending = b
	d.stateGen++
	d.stateMu.Unlock()
	signal(d.stateWake)
	return nil
}

// PublishEvent stores e in the outbox, numbered (EventReport.Seq), and
// returns: the report is on the disk and goes out, in order, once the
// broker is reachable, however long that takes and across restarts. It
// fails only if e cannot be encoded or the store fails.
func (d *Device) PublishEvent(_ context.Context, e runtime.Event) error {
	return d.out.append(func(epoch string, seq uint64) ([]byte, error) {
		return encode("event report", EventReport{Format: ReportFormat, Device: d.opts.Device, Epoch: epoch, Seq: seq, Event: e})
	})
}

// Outbox returns the Seq of the last event report the broker acknowledged
// and how many reports wait after it.
func (d *Device) Outbox() (acked, pending uint64) { return d.out.position() }

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
	type inFlight struct {
		seq uint64
		tok paho.Token
	}
	if !c.IsConnectionOpen() {
		return ErrOffline
	}
	var window []inFlight
	sent, _ := d.out.position()
	for {
		if free := d.opts.InFlight - len(window); free > 0 {
			batch, err := d.out.read(sent, free)
			if err != nil {
				return err
			}
			for _, r := range batch {
				tok := c.Publish(d.events, qos, false, r.payload)
				if failed(tok) { // not sent: nothing after it may be
					return newError(ErrOffline, tok.Error(), "fleet: publish of event report %d: %v", r.seq, tok.Error())
				}
				window = append(window, inFlight{r.seq, tok})
				sent = r.seq
			}
		}
		if len(window) == 0 {
			if n := d.out.droppedCount(); n > 0 {
				if err := d.PublishEvent(ctx, runtime.Event{
					ID: runtime.NewEventID(), Time: time.Now().UTC(), Kind: runtime.EventReportsDropped,
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
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-d.out.wake:
			case <-d.stateWake:
			}
			continue
		}
		if err := d.waitAck(ctx, c, window[0].tok); err != nil {
			return err
		}
		n := 1 // acknowledge every completed report at the front at once
		for n < len(window) && completed(window[n].tok) {
			n++
		}
		if err := d.out.ack(window[n-1].seq); err != nil {
			return err
		}
		window = window[n:]
	}
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
	b, gen := d.pending, d.stateGen
	d.stateMu.Unlock()
	if b == nil {
		return nil
	}
	if err := d.waitAck(ctx, c, c.Publish(d.state, qos, true, b)); err != nil {
		return err
	}
	d.stateMu.Lock()
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
