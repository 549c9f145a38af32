package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tern-iot/tern/runtime"
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
	// out).
	Broker string
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
	// MaxRetryInterval caps the backoff between connection attempts, which
	// starts at one second (or at MaxRetryInterval if that is smaller) and
	// doubles; default 30s.
	MaxRetryInterval time.Duration

	dial dialFunc // nil means net.Dialer; replaced in tests
}

// ScopedTarget is a target envelope and where it came from: DeviceScope or
// GroupScope.
type ScopedTarget struct {
	Scope string
	TargetEnvelope
}

// Refusal is a message on the device's target topic that was not a valid
// target envelope. Err says why, in words meant for the operator who pushed
// it (see ParseTargetEnvelope).
type Refusal struct {
	Topic string
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

	// targets holds at most one envelope: the highest version received and
	// not yet taken. refusals holds the newest refusals.
	targets  chan ScopedTarget
	refusals chan Refusal
	mu       sync.Mutex // serializes sends on targets and refusals with closing them
	closed   bool

	ran    atomic.Bool
	client atomic.Pointer[paho.Client]
}

// NewDevice checks opts and returns a Device. It does not connect: that is
// Run's job.
func NewDevice(opts DeviceOptions) (*Device, error) {
	broker, err := brokerURL(opts.Broker)
	if err != nil {
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
	t := opts.Topics
	groups := map[string]string{}
	for _, g := range opts.Groups {
		if p := idProblem(g); p != "" {
			return nil, fmt.Errorf("fleet: group %q: %s", g, p)
		}
		groups[t.GroupTarget(g)] = GroupScope(g)
	}
	return &Device{
		opts:        opts,
		broker:      broker,
		log:         orDiscard(opts.Logger).With("broker", broker, "device", opts.Device),
		target:      t.DeviceTarget(opts.Device),
		state:       t.State(opts.Device),
		events:      t.Events(opts.Device),
		online:      t.Online(opts.Device),
		targets:     make(chan ScopedTarget, 1+len(groups)),
		groupTopics: groups,
		refusals:    make(chan Refusal, refusalBuffer),
	}, nil
}

// Targets delivers the target envelopes received on the device's target
// topic, the retained one included. It never blocks the MQTT client: it
// holds one envelope, and when a new one arrives before the consumer took
// the last, it keeps the higher version (targets supersede each other).
// Expect redelivery: the retained envelope comes again after each
// reconnect. The channel is closed when Run returns.
func (d *Device) Targets() <-chan ScopedTarget { return d.targets }

// Refusals delivers the messages on the target topic that are not valid
// envelopes, so the agent can report them (a target.refused event). It
// holds the 16 newest; older ones are dropped and logged. The channel is
// closed when Run returns. An empty message (a cleared retained target) is
// neither a target nor a refusal: it is logged and ignored.
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

	up := make(chan struct{}, 1) // a connection came up; coalesced
	c := paho.NewClient(d.clientOptions(ctx, up))
	// The route must exist before connecting: the broker delivers what the
	// persistent session queued right after the handshake, before announce
	// subscribes again.
	c.AddRoute(d.target, d.onTarget)
	for topic := range d.groupTopics {
		c.AddRoute(topic, d.onTarget)
	}
	d.client.Store(&c)
	d.log.Info("fleet: connecting to broker", "client_id", d.opts.ClientID)

	// First connection: our own loop, so that the wait honours ctx and each
	// failure is logged. After that paho reconnects by itself.
	var lastWarn time.Time
	for delay := time.Duration(0); ; {
		if !sleep(ctx, delay) {
			return d.stop(c)
		}
		tok := c.Connect()
		<-tok.Done() // bounded: the dial by ctx and ConnectTimeout, the handshake by ConnectTimeout
		err := tok.Error()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return d.stop(c)
		}
		delay = backoff(delay, d.opts.MaxRetryInterval)
		level := slog.LevelDebug
		if time.Since(lastWarn) >= 5*time.Minute { // the first failure, then now and then
			level, lastWarn = slog.LevelWarn, time.Now()
		}
		d.log.Log(ctx, level, "fleet: broker unreachable; the agent keeps working offline and retries",
			"err", err, "retry_in", delay.Round(time.Millisecond))
	}

	var retry <-chan time.Time // set when announcing failed
	var retryDelay time.Duration
	for {
		select {
		case <-ctx.Done():
			return d.stop(c)
		case <-up:
		case <-retry:
		}
		retry = nil
		if err := d.announce(ctx, c); err != nil {
			if ctx.Err() != nil || lostConnection(err) {
				d.log.Debug("fleet: connection lost while setting up the session; again on reconnect", "err", err)
				continue // the next connect announces again
			}
			retryDelay = backoff(retryDelay, d.opts.MaxRetryInterval)
			d.log.Error("fleet: cannot set up the session; targets may not arrive", "err", err, "retry_in", retryDelay.Round(time.Millisecond))
			retry = time.After(retryDelay)
			continue
		}
		retryDelay = 0
	}
}

// clientOptions builds paho's options. Dials are bound to ctx, the
// lifetime of Run.
func (d *Device) clientOptions(ctx context.Context, up chan<- struct{}) *paho.ClientOptions {
	o := paho.NewClientOptions().
		AddBroker(d.broker).
		SetClientID(d.opts.ClientID).
		SetUsername(d.opts.Username).
		SetPassword(d.opts.Password).
		SetCleanSession(false). // persistent session: QoS 1 messages wait for us while we are away
		SetStore(noStore{}).    // no automatic resend of our publishes; see noStore
		SetOrderMatters(true).  // handlers run one at a time, in order; ours never block
		SetKeepAlive(d.opts.KeepAlive).
		SetPingTimeout(min(d.opts.KeepAlive, 10*time.Second)).
		SetConnectTimeout(d.opts.ConnectTimeout).
		SetWriteTimeout(d.opts.ConnectTimeout).
		SetConnectRetry(false). // Run retries the first connection itself
		SetAutoReconnect(true).
		SetMaxReconnectInterval(d.opts.MaxRetryInterval).
		SetBinaryWill(d.online, []byte(onlineFalse), qos, true).
		SetCustomOpenConnectionFn(openConn(ctx, d.opts.ConnectTimeout, d.opts.dial)).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			d.log.Debug("fleet: ignoring message on unexpected topic", "topic", m.Topic())
		}).
		SetOnConnectHandler(func(paho.Client) {
			d.log.Info("fleet: connected to broker")
			select {
			case up <- struct{}{}:
			default:
			}
		}).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			d.log.Warn("fleet: lost connection to broker; reconnecting", "err", err)
		}).
		SetReconnectingHandler(func(paho.Client, *paho.ClientOptions) {
			d.log.Debug("fleet: reconnecting to broker")
		})
	return o
}

// announce runs after every connect: it (re)subscribes to the target topic,
// which also makes the broker resend the retained target, and publishes
// online=true.
func (d *Device) announce(ctx context.Context, c paho.Client) error {
	ctx, cancel := context.WithTimeout(ctx, d.opts.ConnectTimeout)
	defer cancel()
	for _, topic := range append([]string{d.target}, sortedKeys(d.groupTopics)...) {
		if err := subscribe(ctx, c, topic, nil); err != nil {
			return fmt.Errorf("fleet: subscribe to %s: %w", topic, err)
		}
	}
	if err := waitToken(ctx, c, c.Publish(d.online, qos, true, onlineTrue)); err != nil {
		return fmt.Errorf("fleet: publish online=true on %s: %w", d.online, err)
	}
	d.log.Debug("fleet: subscribed and online", "target_topic", d.target)
	return nil
}

// stop says goodbye: online=false (the broker drops the last will on a
// clean disconnect), then disconnects.
func (d *Device) stop(c paho.Client) error {
	if c.IsConnectionOpen() {
		ctx, cancel := context.WithTimeout(context.Background(), min(d.opts.ConnectTimeout, 2*time.Second))
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
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	select {
	case d.targets <- env:
		return
	default:
	}
	held := map[string]ScopedTarget{env.Scope: env}
	order := []string{env.Scope}
drain: // the consumer may take one meanwhile: never block here
	for {
		select {
		case old := <-d.targets:
			if cur, ok := held[old.Scope]; !ok {
				held[old.Scope] = old
				order = append(order, old.Scope)
			} else if old.Version > cur.Version {
				held[old.Scope] = old
			}
		default:
			break drain
		}
	}
	for _, s := range order {
		select {
		case d.targets <- held[s]:
		default:
			d.log.Warn("fleet: target dropped: more scopes than slots", "scope", s)
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
	close(d.refusals)
}

// PublishState publishes s as the device's StateReport, retained, QoS 1,
// and waits for the broker's acknowledgement. It returns an error matching
// ErrOffline at once when not connected, or when the connection drops
// before the acknowledgement; the report is not queued (the outbox, a later
// issue, will be).
func (d *Device) PublishState(ctx context.Context, s runtime.Status) error {
	b, err := encode("state report", StateReport{Format: Format, Device: d.opts.Device, Groups: d.opts.Groups, Status: s})
	if err != nil {
		return err
	}
	return d.publish(ctx, "state", d.state, true, b)
}

// PublishEvent publishes e as an EventReport, QoS 1, not retained, and
// waits for the broker's acknowledgement. Errors are as for PublishState.
func (d *Device) PublishEvent(ctx context.Context, e runtime.Event) error {
	b, err := encode("event report", EventReport{Format: Format, Device: d.opts.Device, Event: e})
	if err != nil {
		return err
	}
	return d.publish(ctx, "event", d.events, false, b)
}

func (d *Device) publish(ctx context.Context, what, topic string, retained bool, b []byte) error {
	p := d.client.Load()
	if p == nil || !(*p).IsConnectionOpen() {
		return newError(ErrOffline, nil, "fleet: cannot publish %s on %s: not connected to the broker; retry later", what, topic)
	}
	c := *p
	err := waitToken(ctx, c, c.Publish(topic, qos, retained, b))
	switch {
	case err == nil:
		return nil
	case lostConnection(err):
		return newError(ErrOffline, err, "fleet: publish %s on %s: connection lost before the broker acknowledged; retry later", what, topic)
	case ctx.Err() != nil:
		return fmt.Errorf("fleet: publish %s on %s: no acknowledgement from the broker: %w", what, topic, err)
	}
	return fmt.Errorf("fleet: publish %s on %s: %w", what, topic, err)
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
