package fleet

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// DefaultOperatorConnectTimeout is OperatorOptions.ConnectTimeout's default.
const DefaultOperatorConnectTimeout = 5 * time.Second

// watchQueue is how many reports a watcher holds for a slow consumer before
// it drops the oldest. A watch of every device receives the retained report
// of each at once, faster than any consumer reads them, so the queue must
// hold a whole fleet's: 1024 lost all but the last 1024 devices' states of
// a 5000-device fleet (bench/watch). A held report costs its size (about
// half a KiB) only while it waits.
const watchQueue = 64 << 10

// AnyDevice, passed as the device to the Watch methods, watches every
// device of the fleet (it is the MQTT single-level wildcard).
const AnyDevice = "+"

// OperatorOptions configures an [Operator].
type OperatorOptions struct {
	// Broker is the broker's address, tcp://host:port (port 1883 if left
	// out), or ssl://host:port for TLS (also tls://, mqtts://; port 8883 if
	// left out).
	Broker string
	// TLS names the CA, client certificate and key for an ssl:// broker;
	// see TLSFiles. With the shipped ACL and use_identity_as_username, the
	// certificate's common name is the operator's username, tern-operator.
	TLS TLSFiles
	// Topics names the fleet and the topic prefix.
	Topics Topics
	// ClientID is the MQTT client id, "tern-op-<random>" if empty.
	ClientID string
	// Session, if not empty, makes the Operator's session persistent
	// (clean session off) under this client id, which replaces ClientID:
	// the broker keeps the session's QoS 1 subscriptions
	// ([Operator.FollowEvents]) and queues what they match while the
	// Operator is away, stopped or restarting, and sends it when the same
	// Session connects again. It is for a consumer that must miss nothing
	// (tern exporter); give each such consumer its own Session, the same
	// across its restarts (two Operators with one Session take the
	// session from each other). In a session, the watches of retained
	// reports (WatchStates, WatchOnline, WatchJobStatuses) subscribe at
	// QoS 0, so that the broker queues no copies of them: the retained
	// ones come again at every connection. A Session follows the rules
	// of a device id (1 to 64 of A-Z a-z 0-9 . _ -).
	Session string
	// Logger receives connection changes and ignored reports; nil discards
	// them.
	Logger *slog.Logger
	// ConnectTimeout bounds connecting and each wait for the broker's
	// acknowledgement; default 5s.
	ConnectTimeout time.Duration

	dial dialFunc // nil means net.Dialer; replaced in tests
	// Username and Password log in to a broker that requires it.
	Username, Password string
}

// Operator is the operator end of the fleet contract, used by the tern CLI:
// it pushes targets and watches what devices report. Its session is clean
// (nothing is kept at the broker for it) and it reconnects by itself. Its
// methods are safe for concurrent use.
type Operator struct {
	opts   OperatorOptions
	broker string
	log    *slog.Logger
	client paho.Client

	life      context.Context // done on Close
	closeLife context.CancelFunc
	closeOnce sync.Once
	wg        sync.WaitGroup // watch pumps

	subMu sync.Mutex // serializes subscribe and unsubscribe calls
	mu    sync.Mutex // guards sinks
	sinks map[string]map[*sink]struct{}

	everUp atomic.Bool
	up     chan struct{} // signalled at every connect

	// held, in a session, is closed once messages may be dispatched: at
	// the first FollowEvents, or ConnectTimeout after connecting. The
	// broker sends what it queued for the session right after it accepts
	// the connection, before any subscription of this process: those
	// messages wait for the sink that keeps them, since paho acknowledges
	// each once dispatch returns. nil without a session.
	held     chan struct{}
	holdOnce sync.Once
}

// sink receives the messages on one subscription filter.
type sink struct {
	deliver func(topic string, payload []byte)
	// qos is the QoS the sink needs: qos for a watch, 0 for a read of
	// retained messages, which loses nothing by it (the session is clean)
	// and costs a broker less: nats-server makes every QoS 1 subscription
	// a JetStream consumer and limits them (docs/mqtt.md). A filter is
	// subscribed at the highest QoS of its sinks.
	qos byte
	// twice makes the Operator subscribe again once the broker
	// acknowledged the subscription, for a watch of retained reports:
	// nats-server can lose a retained message published while a
	// subscription is being made, neither sent as retained (its index of
	// retained messages is updated asynchronously) nor live (the
	// subscription was not in place yet). By the second subscription,
	// one round trip later, it is indexed unless the broker is very
	// busy. The sink sees retained reports twice, and drops repeats.
	twice bool
	// release lets the messages a persistent session holds through
	// (Operator.held) once the sink is registered, before the broker
	// acknowledged the subscription: they may be the sink's, and hold
	// back the acknowledgement.
	release bool
}

// DialOperator connects to the broker, waiting at most
// OperatorOptions.ConnectTimeout (or until ctx is done). Close the Operator
// when done.
func DialOperator(ctx context.Context, opts OperatorOptions) (*Operator, error) {
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
	if opts.ConnectTimeout < 0 {
		return nil, fmt.Errorf("fleet: OperatorOptions.ConnectTimeout is negative (%v); use 0 for the default", opts.ConnectTimeout)
	}
	if opts.ConnectTimeout == 0 {
		opts.ConnectTimeout = DefaultOperatorConnectTimeout
	}
	if opts.Session != "" {
		if p := idProblem(opts.Session); p != "" {
			return nil, fmt.Errorf("fleet: OperatorOptions.Session: %s", p)
		}
		if opts.ClientID != "" && opts.ClientID != opts.Session {
			return nil, fmt.Errorf("fleet: OperatorOptions: both ClientID (%s) and Session (%s) are set; a session's client id is its Session", opts.ClientID, opts.Session)
		}
		opts.ClientID = opts.Session
	}
	if opts.ClientID == "" {
		var r [6]byte
		_, _ = rand.Read(r[:]) // never fails
		opts.ClientID = "tern-op-" + hex.EncodeToString(r[:])
	}
	life, closeLife := context.WithCancel(context.Background())
	o := &Operator{
		opts:      opts,
		broker:    broker,
		log:       orDiscard(opts.Logger).With("broker", broker),
		life:      life,
		closeLife: closeLife,
		sinks:     make(map[string]map[*sink]struct{}),
		up:        make(chan struct{}, 1),
	}
	if opts.Session != "" {
		o.held = make(chan struct{})
	}

	// The first dial honours ctx; later ones (reconnects) live as long as
	// the Operator.
	var dialCtx atomic.Pointer[context.Context]
	dialCtx.Store(&ctx)
	co := paho.NewClientOptions().
		AddBroker(broker).
		SetClientID(opts.ClientID).
		SetUsername(opts.Username).
		SetPassword(opts.Password).
		SetCleanSession(opts.Session == "").
		SetStore(noStore{}).
		SetOrderMatters(true).
		SetConnectTimeout(opts.ConnectTimeout).
		SetWriteTimeout(opts.ConnectTimeout + max(MaxReleasePayload, MaxAgentPayload)/releaseRate*time.Second). // a release is one big packet
		SetKeepAlive(30 * time.Second).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(10 * time.Second).
		SetCustomOpenConnectionFn(func(u *url.URL, po paho.ClientOptions) (net.Conn, error) {
			return openConn(*dialCtx.Load(), opts.ConnectTimeout, opts.dial, opts.TLS)(u, po)
		}).
		SetDefaultPublishHandler(o.dispatch).
		SetOnConnectHandler(o.onConnect).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			o.log.Warn("fleet: lost connection to broker; reconnecting", "err", err)
		})
	o.client = paho.NewClient(co)

	tok := o.client.Connect()
	<-tok.Done() // bounded: the dial by ctx and ConnectTimeout, the handshake by ConnectTimeout
	dialCtx.Store(&life)
	if err := tok.Error(); err != nil {
		closeLife()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("fleet: connect to broker %s: %w", broker, ctx.Err())
		}
		if ct, ok := tok.(*paho.ConnectToken); ok && ct.ReturnCode() != packets.ErrNetworkError && ct.ReturnCode() != packets.Accepted {
			return nil, fmt.Errorf("fleet: broker %s refused the connection: %w; check the client id (%s) and the broker's access rules", broker, err, opts.ClientID)
		}
		if errors.Is(err, errTLS) {
			return nil, fmt.Errorf("fleet: connect to broker %s: %w", broker, err)
		}
		return nil, fmt.Errorf("fleet: cannot reach broker %s: %w; is it running? start one with `tern broker`", broker, err)
	}
	if o.held != nil {
		time.AfterFunc(opts.ConnectTimeout, o.release)
	}
	return o, nil
}

// release lets held messages through (see Operator.held).
func (o *Operator) release() {
	if o.held != nil {
		o.holdOnce.Do(func() { close(o.held) })
	}
}

// onConnect resubscribes the watches after a reconnect: a clean session's
// broker forgot them, and a persistent session's sends the retained
// messages again for the new subscription.
func (o *Operator) onConnect(c paho.Client) {
	signal(o.up)
	if !o.everUp.Swap(true) {
		return
	}
	o.log.Info("fleet: reconnected to broker")
	o.subMu.Lock()
	defer o.subMu.Unlock()
	o.mu.Lock()
	byQoS := o.byQoS(slices.Collect(maps.Keys(o.sinks)))
	o.mu.Unlock()
	ctx, cancel := context.WithTimeout(o.life, o.opts.ConnectTimeout)
	defer cancel()
	for q, filters := range byQoS {
		if err := subscribeAt(ctx, c, byte(q), filters...); err != nil {
			o.log.Error("fleet: cannot resubscribe after reconnecting; a watch will miss reports", "topics", len(filters), "err", err)
			return
		}
	}
}

// byQoS sorts filters by the QoS to subscribe them at, the highest of
// their sinks': byQoS[q] holds those at q, in order. o.mu is held.
func (o *Operator) byQoS(filters []string) (byQoS [qos + 1][]string) {
	for _, f := range filters {
		var q byte
		for s := range o.sinks[f] {
			q = max(q, s.qos)
		}
		byQoS[q] = append(byQoS[q], f)
	}
	for _, fs := range byQoS {
		sort.Strings(fs)
	}
	return byQoS
}

// PushTarget publishes env, retained, QoS 1, on device's target topic and
// waits for the broker's acknowledgement. A zero env.Format is set to
// Format, and an unsigned envelope that names no fleet is made for the
// Operator's (SetTopics). It refuses an envelope the device would refuse:
// malformed, signed for no fleet, or made for another fleet.
func (o *Operator) PushTarget(ctx context.Context, device string, env TargetEnvelope) error {
	if p := idProblem(device); p != "" {
		return fmt.Errorf("fleet: push target: device id: %s", p)
	}
	return o.pushTarget(ctx, "device "+device, o.opts.Topics.DeviceTarget(device), env)
}

// PushGroupTarget publishes env, retained, QoS 1, on group's target topic:
// every device in the group (now or later) receives it.
func (o *Operator) PushGroupTarget(ctx context.Context, group string, env TargetEnvelope) error {
	if p := idProblem(group); p != "" {
		return fmt.Errorf("fleet: push target: group name: %s", p)
	}
	return o.pushTarget(ctx, "group "+group, o.opts.Topics.GroupTarget(group), env)
}

func (o *Operator) pushTarget(ctx context.Context, device, topic string, env TargetEnvelope) error {
	if env.Format == 0 {
		env.SetLayers(env.Layers) // Format, or LayersFormat with layers
	}
	if err := o.address("target for "+device, env.Key != "", &env.Prefix, &env.Fleet, func(t Topics) error { return env.CheckTopics(t) }); err != nil {
		return err
	}
	b, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("fleet: push target to %s: encode: %w", device, err)
	}
	if _, err := ParseTargetEnvelope(b); err != nil {
		return fmt.Errorf("fleet: not pushing a target device %s would refuse: %w", device, err)
	}
	return o.publishRetained(ctx, "push target to "+device, topic, b, o.opts.ConnectTimeout)
}

// releaseRate is the slowest upload, in bytes per second, a release is
// given time for: an 11 MB payload at 256 KiB/s takes 44 s.
const releaseRate = 256 << 10

// PushRelease publishes env in chunks (see chunks.go): each chunk of its
// code retained, QoS 1, on its topic ([Topics.ModuleChunk]), then the
// manifest, retained, QoS 1, on the module's topic ([Topics.Module]),
// each acknowledged by the broker: every device that runs the module (now
// or later) fetches it. A zero env.Format is set to Format, and an
// unsigned release that names no fleet is made for the Operator's. It
// refuses a release devices would refuse for its form (see
// ParseReleaseEnvelope) or its fleet; NewRelease makes a good one. A
// release of format ChunkedFormat (a manifest alone) is refused: give the
// whole release.
func (o *Operator) PushRelease(ctx context.Context, env ReleaseEnvelope) error {
	if env.Format == 0 {
		env.Format = Format
	}
	if err := o.address("module release of "+env.Module, env.Key != "", &env.Prefix, &env.Fleet, func(t Topics) error { return env.CheckTopics(t) }); err != nil {
		return err
	}
	b, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("fleet: release module %s: encode: %w", env.Module, err)
	}
	if _, err := ParseReleaseEnvelope(b); err != nil {
		return fmt.Errorf("fleet: not releasing what devices would refuse: %w", err)
	}
	if env.Format != Format {
		return fmt.Errorf("fleet: release module %s: give the whole release (format %d, with its code); PushRelease cuts it into chunks", env.Module, Format)
	}
	manifest, chunks := env.Split(ChunkSize)
	for i, c := range chunks {
		wait := o.opts.ConnectTimeout + time.Duration(len(c)/releaseRate)*time.Second
		if err := o.publishRetained(ctx, fmt.Sprintf("release module %s: chunk %d of %d", env.Module, i+1, len(chunks)),
			o.opts.Topics.ModuleChunk(env.Module, i), c, wait); err != nil {
			return err
		}
	}
	if err := o.awaitRetained(ctx, o.opts.Topics.ModuleChunk(env.Module, len(chunks)-1), chunks[len(chunks)-1]); err != nil {
		return err
	}
	mb, err := json.Marshal(manifest)
	if err != nil {
		return fmt.Errorf("fleet: release module %s: encode: %w", env.Module, err)
	}
	return o.publishRetained(ctx, "release module "+env.Module, o.opts.Topics.Module(env.Module), mb, o.opts.ConnectTimeout)
}

// address makes an unsigned envelope that names no fleet (prefix and
// fleet empty) for the Operator's, and refuses one that is signed for no
// fleet or made for another (check calls the envelope's CheckTopics, once
// the fleet is filled in): every device of the Operator's fleet would
// refuse it.
func (o *Operator) address(what string, signed bool, prefix, fleet *string, check func(Topics) error) error {
	t := o.opts.Topics
	if *prefix == "" && *fleet == "" {
		if signed {
			return fmt.Errorf("fleet: not publishing the %s: it is signed for no fleet, so every device refuses it; call SetTopics before Sign (the tern commands do)", what)
		}
		*prefix, *fleet = t.prefix(), t.Fleet
	}
	if err := check(t); err != nil {
		return fmt.Errorf("fleet: not publishing to fleet %s what its devices refuse: %w; or, if it is meant for fleet %s, publish it there (--fleet %s --prefix %s)",
			t.Fleet, err, *fleet, *fleet, *prefix)
	}
	return nil
}

// publishRetained publishes b retained, QoS 1, on topic and waits at most
// ackWait for the broker's acknowledgement. what says what is done, for
// errors ("push target to device pi-001"). A connection lost before the
// acknowledgement (a node of a cluster dying, a broker restarting) is
// waited out and the publish made again, within ackWait: what the
// operator publishes is versioned and retained, so a second copy is
// harmless.
func (o *Operator) publishRetained(ctx context.Context, what, topic string, b []byte, ackWait time.Duration) error {
	if !o.client.IsConnectionOpen() {
		return newError(ErrOffline, nil, "fleet: %s: not connected to the broker %s (reconnecting); retry", what, o.broker)
	}
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, ackWait)
		err := waitToken(actx, o.client, o.client.Publish(topic, qos, true, b))
		if err != nil && lostConnection(err) && ctx.Err() == nil && attempt < publishAttempts {
			o.log.Warn("fleet: connection lost before the broker acknowledged; publishing again once reconnected", "what", what, "err", err)
			uctx, ucancel := context.WithTimeout(ctx, ackWait)
			up := o.waitUp(uctx)
			ucancel()
			cancel()
			if up == nil {
				continue
			}
		}
		cancel()
		switch {
		case err == nil:
			return nil
		case lostConnection(err):
			return newError(ErrOffline, err, "fleet: %s: connection to %s lost before the broker acknowledged (%d times); do it again (the same version is harmless)", what, o.broker, attempt)
		case actx.Err() != nil:
			return fmt.Errorf("fleet: %s: no acknowledgement from broker %s within %v: %w", what, o.broker, ackWait, err)
		}
		return fmt.Errorf("fleet: %s: %w", what, err)
	}
}

// publishAttempts bounds how many times publishRetained publishes when
// the connection drops before the acknowledgement, each time waiting up
// to its ackWait for the reconnection and again for the acknowledgement.
// A NATS node closes an MQTT connection whose publish its JetStream could
// not store within js_api_timeout (5 s); a cluster that lost a node took
// 5 to 16 s to store again in the node-loss scenario, and three attempts
// (about 15 s) once gave up a push that then went through. Six give a
// cluster about 30 s.
const publishAttempts = 6

// waitUp returns once the client is connected, or with ctx's error.
func (o *Operator) waitUp(ctx context.Context) error {
	for !o.client.IsConnectionOpen() {
		select {
		case <-o.up:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// RetainedRelease reads the release retained on module's topic, if any:
// ok is false when none arrives within wait after the broker acknowledged
// the subscription (MQTT cannot say "there is none"), or when the retained
// one does not parse. tern release uses it to pick the next version.
func (o *Operator) RetainedRelease(ctx context.Context, module string, wait time.Duration) (env ReleaseEnvelope, ok bool, err error) {
	if p := idProblem(module); p != "" {
		return ReleaseEnvelope{}, false, fmt.Errorf("fleet: read release: module name: %s", p)
	}
	filter := o.opts.Topics.Module(module)
	got := make(chan []byte, 1)
	s := &sink{deliver: func(_ string, payload []byte) {
		select {
		case got <- payload:
		default:
		}
	}} // qos 0: a read
	if err := o.addSink(ctx, filter, s, func() {}); err != nil {
		return ReleaseEnvelope{}, false, fmt.Errorf("fleet: read release of %s: %w", module, err)
	}
	defer o.removeSink(filter, s)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case b := <-got:
		if len(b) == 0 {
			return ReleaseEnvelope{}, false, nil
		}
		env, err := ParseReleaseEnvelope(b)
		if err != nil {
			o.log.Warn("fleet: the retained release does not parse", "topic", filter, "err", err)
			return ReleaseEnvelope{}, false, nil
		}
		return env, true, nil
	case <-t.C:
		return ReleaseEnvelope{}, false, nil
	case <-ctx.Done():
		return ReleaseEnvelope{}, false, ctx.Err()
	}
}

// awaitRetained waits until the broker serves payload retained on topic
// to a new subscription: it publishes the manifest of a chunked release
// only once its chunks can be read, as nats-server indexes retained
// messages a few milliseconds after it acknowledged them (docs/mqtt.md),
// and a device that asked for a chunk in that gap would wait chunkStall
// for it. Mosquitto serves it at once; one round trip.
func (o *Operator) awaitRetained(ctx context.Context, topic string, payload []byte) error {
	want := sha256.Sum256(payload)
	got := make(chan struct{}, 1)
	s := &sink{deliver: func(_ string, b []byte) {
		if sha256.Sum256(b) == want {
			signal(got)
		}
	}} // qos 0: a read
	ctx, cancel := context.WithTimeout(ctx, o.opts.ConnectTimeout)
	defer cancel()
	for again := false; ; again = true {
		if err := o.addSinks(ctx, []string{topic}, s, again, func() {}); err != nil {
			return fmt.Errorf("fleet: read back %s: %w", topic, err)
		}
		select {
		case <-got:
			o.removeSink(topic, s)
			return nil
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			o.removeSink(topic, s)
			return fmt.Errorf("fleet: the broker does not serve what it acknowledged on %s (retained) within %v", topic, o.opts.ConnectTimeout)
		}
	}
}

// RetainedTargets reads the targets retained for scopes ([DeviceScope],
// [GroupScope]), as a device of the Operator's fleet takes them: the map
// holds, by scope, each one that arrived, parses and is made for the
// Operator's fleet (the others are logged and left out, as devices refuse
// them). A scope without a retained target is absent. MQTT cannot say
// "there is none", so it returns once every scope's target arrived, or
// once none arrived for wait, counted from the broker's acknowledgement of
// the subscriptions and from each target that arrives (a broker sends
// every retained message right after the acknowledgement, so a quiet gap
// means it has sent them all).
//
// Signatures are not checked: the Operator trusts no keys (devices do).
// With [Scopes] and [CombinedVersion], tern uses it to tell the combined
// version each device should report after a push to one of its sources.
func (o *Operator) RetainedTargets(ctx context.Context, scopes []string, wait time.Duration) (map[string]TargetEnvelope, error) {
	byTopic := make(map[string]string, len(scopes))
	filters := make([]string, 0, len(scopes))
	for _, sc := range scopes {
		topic, err := o.scopeTopic(sc)
		if err != nil {
			return nil, err
		}
		if _, dup := byTopic[topic]; !dup {
			byTopic[topic] = sc
			filters = append(filters, topic)
		}
	}
	if len(filters) == 0 {
		return map[string]TargetEnvelope{}, nil
	}
	got := make(map[string]TargetEnvelope, len(filters))
	heard := make(map[string]bool, len(filters)) // scopes whose topic delivered something
	err := o.readRetainedUntil(ctx, filters, wait, func(topic string, payload []byte) bool {
		sc, ok := byTopic[topic]
		if !ok {
			return false
		}
		env, err := ParseTargetEnvelope(payload)
		if err == nil {
			err = env.CheckTopics(o.opts.Topics)
		}
		if err != nil && len(payload) > 0 {
			o.log.Warn("fleet: the retained target is one devices refuse; not counting it", "topic", topic, "err", err)
		}
		heard[sc] = true
		if err == nil {
			got[sc] = env
		} else {
			delete(got, sc) // cleared, or refused: none that devices take
		}
		return len(heard) == len(filters)
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: read retained targets: %w", err)
	}
	return got, nil
}

// readRetained delivers the retained messages on filters (and any that
// arrive meanwhile) to deliver, one at a time, until none arrived for
// wait, counted from the broker's acknowledgement of the subscriptions
// and from each message: a broker sends every retained message right
// after the acknowledgement, so a quiet gap means it has sent them all.
// Empty payloads (cleared messages) are left out.
func (o *Operator) readRetained(ctx context.Context, filters []string, wait time.Duration, deliver func(topic string, payload []byte)) error {
	return o.readRetainedUntil(ctx, filters, wait, func(topic string, payload []byte) bool {
		if len(payload) > 0 {
			deliver(topic, payload)
		}
		return false
	})
}

// readRetainedUntil is readRetained that also stops when deliver says it
// has all it wants, and delivers empty payloads too.
func (o *Operator) readRetainedUntil(ctx context.Context, filters []string, wait time.Duration, deliver func(topic string, payload []byte) (all bool)) error {
	var mu sync.Mutex
	all := false
	arrived := make(chan struct{}, 1)
	s := &sink{deliver: func(topic string, payload []byte) {
		mu.Lock()
		if !all {
			all = deliver(topic, payload)
		}
		mu.Unlock()
		select {
		case arrived <- struct{}{}:
		default:
		}
	}} // qos 0: a read
	if err := o.addSinks(ctx, filters, s, true, func() {}); err != nil {
		return err
	}
	defer o.removeSinks(filters, s)
	defer func() { // no delivery after the return, even one under way
		mu.Lock()
		all = true
		mu.Unlock()
	}()
	quiet := time.NewTimer(wait)
	defer quiet.Stop()
	for {
		mu.Lock()
		done := all
		mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-arrived:
			quiet.Reset(wait)
		case <-quiet.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// scopeTopic is the target topic of scope (device/<id> or group/<name>).
func (o *Operator) scopeTopic(scope string) (string, error) {
	kind, name, _ := strings.Cut(scope, "/")
	p := idProblem(name)
	switch {
	case p != "" && (kind == "device" || kind == "group"):
		return "", fmt.Errorf("fleet: read retained targets: scope %q: %s", scope, p)
	case kind == "device":
		return o.opts.Topics.DeviceTarget(name), nil
	case kind == "group":
		return o.opts.Topics.GroupTarget(name), nil
	}
	return "", fmt.Errorf("fleet: read retained targets: scope %.80q is neither device/<id> nor group/<name> (see DeviceScope, GroupScope)", scope)
}

// WatchStates delivers the state reports of device, or of every device
// when device is AnyDevice ("+"), starting with the retained ones. Reports
// that do not parse are logged and skipped. The channel is closed when ctx
// is done or the Operator is closed; it holds up to 65536 reports for a slow
// reader, then drops the oldest.
func (o *Operator) WatchStates(ctx context.Context, device string) (<-chan StateReport, error) {
	return watch(ctx, o, "state", device, true, o.opts.Topics.State, ParseStateReport,
		func(r *StateReport) *string { return &r.Device })
}

// WatchEvents delivers the event reports of device, or of every device
// when device is AnyDevice ("+"), from now on (events are not retained).
// A report may come twice (QoS 1); EventReport.ID tells. Otherwise as
// WatchStates.
func (o *Operator) WatchEvents(ctx context.Context, device string) (<-chan EventReport, error) {
	return watch(ctx, o, "event", device, false, o.opts.Topics.Events, ParseEventReport,
		func(r *EventReport) *string { return &r.Device })
}

// Presence is a device's online flag, as published retained on its online
// topic ([Topics.Online]).
type Presence struct {
	// Device is the device's id, taken from the topic.
	Device string `json:"device"`
	// Online is true while the device is connected; false after it stopped,
	// or after the broker gave up on it and published its last will.
	Online bool `json:"online"`
}

// WatchOnline delivers the online flags of device, or of every device when
// device is AnyDevice ("+"), starting with the retained ones. Otherwise as
// WatchStates.
func (o *Operator) WatchOnline(ctx context.Context, device string) (<-chan Presence, error) {
	return watch(ctx, o, "online flag", device, true, o.opts.Topics.Online,
		func(b []byte) (Presence, error) {
			on, err := ParseOnline(b)
			return Presence{Online: on}, err
		},
		func(p *Presence) *string { return &p.Device })
}

// WatchJobStatuses delivers the job status reports ([JobStatusReport])
// of device, or of every device when device is AnyDevice ("+"), for
// every job, starting with the retained ones. Reports whose device does
// not match their topic are skipped. Otherwise as WatchStates.
func (o *Operator) WatchJobStatuses(ctx context.Context, device string) (<-chan JobStatusReport, error) {
	return watch(ctx, o, "job status", device, true, func(d string) string { return o.opts.Topics.JobStatus(d, "+") },
		ParseJobStatusReport, func(r *JobStatusReport) *string { return &r.Device })
}

// FollowEvents calls handle with every event report of device, or of
// every device when device is AnyDevice ("+"), from now on, subscribed at
// QoS 1, for as long as the Operator is open; ctx bounds only the
// subscribing. handle runs on the Operator's delivery goroutine, one
// report at a time in the order they arrive, and the broker's
// acknowledgement of a report is sent once handle returned: what handle
// keeps (durably) before it returns is never lost. A slow handle holds
// back every delivery of the Operator. Reports come at least once: a
// report whose acknowledgement was lost comes again, and a NATS broker
// sends one again after its ack wait, behind later ones; EventReport.Seq
// tells copies apart ([Dedup]).
//
// In a persistent session (OperatorOptions.Session) the subscription
// outlives the process: the broker queues the reports that arrive while
// the Operator is closed and sends them right after the next connection;
// the Operator holds them until the first FollowEvents (or
// ConnectTimeout), so call it first, before the watches. Close the
// Operator to stop following for now; the broker keeps queuing.
func (o *Operator) FollowEvents(ctx context.Context, device string, handle func(EventReport)) error {
	if device != AnyDevice {
		if p := idProblem(device); p != "" {
			return fmt.Errorf("fleet: follow events: device id: %s (or %q for all devices)", p, AnyDevice)
		}
	}
	filter := o.opts.Topics.Events(device)
	s := &sink{deliver: func(t string, payload []byte) {
		if len(payload) == 0 {
			return
		}
		r, err := ParseEventReport(payload)
		if err != nil {
			o.log.Warn("fleet: ignoring an event report that does not parse", "topic", t, "err", err)
			return
		}
		if id := o.opts.Topics.deviceOf(t); r.Device != id {
			o.log.Warn("fleet: ignoring an event report whose device does not match its topic", "topic", t, "device", r.Device)
			return
		}
		handle(r)
	}, qos: qos, release: true}
	if err := o.addSink(ctx, filter, s, func() {}); err != nil {
		return fmt.Errorf("fleet: follow events on %s: %w", filter, err)
	}
	return nil
}

// watch subscribes to topic(device) and pumps parsed reports to the
// returned channel until ctx or the Operator is done.
func watch[T any](ctx context.Context, o *Operator, what, device string, retained bool, topic func(string) string,
	parse func([]byte) (T, error), deviceOf func(*T) *string) (<-chan T, error) {
	if device != AnyDevice {
		if p := idProblem(device); p != "" {
			return nil, fmt.Errorf("fleet: watch %ss: device id: %s (or %q for all devices)", what, p, AnyDevice)
		}
	}
	filter := topic(device)
	q := newQueue[T](o.log.With("topic", filter))
	var (
		mu   sync.Mutex
		last = make(map[string]uint64) // by topic, the hash of the last payload
		seed = maphash.MakeSeed()
	)
	s := &sink{deliver: func(t string, payload []byte) {
		if len(payload) == 0 {
			return // a retained report was cleared
		}
		if retained {
			// The same report again, sent as retained to a second
			// subscription (sink.twice) or to another watch's: once
			// is enough.
			h := maphash.Bytes(seed, payload)
			mu.Lock()
			dup := last[t] == h
			last[t] = h
			mu.Unlock()
			if dup {
				return
			}
		}
		r, err := parse(payload)
		if err != nil {
			o.log.Warn("fleet: ignoring a report that does not parse", "topic", t, "err", err)
			return
		}
		id := o.opts.Topics.deviceOf(t)
		if dev := deviceOf(&r); *dev == "" {
			*dev = id // a payload without a device field (online) is about its topic's device
		}
		if id != "" && *deviceOf(&r) != id {
			o.log.Warn("fleet: ignoring a report whose device does not match its topic", "topic", t, "device", *deviceOf(&r))
			return
		}
		q.push(r)
	}, qos: o.watchQoS(retained), twice: retained}
	out := make(chan T)
	start := func() {
		o.wg.Go(func() {
			defer o.removeSink(filter, s)
			pump(ctx, o.life, q, out)
		})
	}
	if err := o.addSink(ctx, filter, s, start); err != nil {
		return nil, fmt.Errorf("fleet: watch %ss on %s: %w", what, filter, err)
	}
	return out, nil
}

// pump moves reports from q to out until ctx or life is done, then closes
// out.
func pump[T any](ctx, life context.Context, q *queue[T], out chan<- T) {
	defer close(out)
	for {
		r, ok := q.pop()
		if !ok {
			select {
			case <-q.ready:
				continue
			case <-ctx.Done():
				return
			case <-life.Done():
				return
			}
		}
		select {
		case out <- r:
		case <-ctx.Done():
			return
		case <-life.Done():
			return
		}
	}
}

// watchQoS is the QoS of a watch: 1, or 0 for retained reports in a
// persistent session (OperatorOptions.Session), which then queues no
// copies of them while the Operator is away: the retained ones come at
// every subscription. A queue of state reports would crowd out the events
// the session is for in a broker's bounded queue (Mosquitto's
// max_queued_messages).
func (o *Operator) watchQoS(retained bool) byte {
	if retained && o.opts.Session != "" {
		return 0
	}
	return qos
}

// dispatch runs on paho's delivery goroutine for every message (no routes
// are registered, so paho calls it once per message): each sink whose
// filter matches gets the message once, however many watches overlap.
// paho acknowledges a QoS 1 message once dispatch returns.
func (o *Operator) dispatch(_ paho.Client, m paho.Message) {
	if o.held != nil {
		// Close releases it after disconnecting, so that a message held
		// then is not acknowledged.
		<-o.held
	}
	var to []*sink
	o.mu.Lock()
	for filter, sinks := range o.sinks {
		if topicMatch(filter, m.Topic()) {
			for s := range sinks {
				to = append(to, s)
			}
		}
	}
	o.mu.Unlock()
	for _, s := range to {
		s.deliver(m.Topic(), m.Payload())
	}
}

// topicMatch reports whether an MQTT topic filter matches a topic name.
func topicMatch(filter, topic string) bool {
	for {
		f, fRest, fMore := strings.Cut(filter, "/")
		if f == "#" {
			return true
		}
		t, tRest, tMore := strings.Cut(topic, "/")
		if f != "+" && f != t {
			return false
		}
		if !fMore || !tMore {
			return fMore == tMore || fRest == "#"
		}
		filter, topic = fRest, tRest
	}
}

// addSink registers s on filter, subscribing if it is the first, then
// starts the watch's pump with start. All under subMu: Close ends life and
// then takes subMu before it waits for the pumps, so a pump either starts
// before Close waits, or not at all.
func (o *Operator) addSink(ctx context.Context, filter string, s *sink, start func()) error {
	return o.addSinks(ctx, []string{filter}, s, false, start)
}

// addSinks registers s on every filter and subscribes to those that had
// no sink of s's QoS or higher, or, with resend, to all of them: subscribing again makes the
// broker send the retained messages again, which a read of them needs
// (the other sinks get them twice). Then it calls start, as addSink.
func (o *Operator) addSinks(ctx context.Context, filters []string, s *sink, resend bool, start func()) error {
	o.subMu.Lock()
	defer o.subMu.Unlock()
	if o.life.Err() != nil {
		return errors.New("fleet: the Operator is closed")
	}
	var sub []string
	o.mu.Lock()
	for _, f := range filters {
		sinks := o.sinks[f]
		if sinks == nil {
			sinks = make(map[*sink]struct{})
			o.sinks[f] = sinks
		}
		higher := true // than the QoS f is subscribed at
		for other := range sinks {
			higher = higher && other.qos < s.qos
		}
		sinks[s] = struct{}{}
		if higher || resend {
			sub = append(sub, f)
		}
	}
	byQoS := o.byQoS(sub)
	o.mu.Unlock()
	if s.release {
		o.release()
	}
	ctx, cancel := context.WithTimeout(ctx, o.opts.ConnectTimeout)
	defer cancel()
	rounds := 1
	if s.twice {
		rounds = 2
	}
	for range rounds {
		for q, sub := range byQoS {
			if len(sub) == 0 {
				continue
			}
			if err := subscribeAt(ctx, o.client, byte(q), sub...); err != nil {
				o.unregister(filters, s)
				if lostConnection(err) {
					return newError(ErrOffline, err, "not connected to the broker %s (reconnecting); retry", o.broker)
				}
				return err
			}
		}
	}
	start()
	return nil
}

// removeSink unregisters s, unsubscribing if it was the last.
func (o *Operator) removeSink(filter string, s *sink) { o.removeSinks([]string{filter}, s) }

// removeSinks unregisters s from filters, unsubscribing from those it was
// the last sink of.
func (o *Operator) removeSinks(filters []string, s *sink) {
	o.subMu.Lock()
	defer o.subMu.Unlock()
	last := o.unregister(filters, s)
	if len(last) == 0 || o.life.Err() != nil || !o.client.IsConnectionOpen() {
		return // closing, or the broker forgets clean-session subscriptions anyway
	}
	ctx, cancel := context.WithTimeout(o.life, o.opts.ConnectTimeout)
	defer cancel()
	for len(last) > 0 {
		n := min(len(last), maxSubscribeFilters)
		if err := waitToken(ctx, o.client, o.client.Unsubscribe(last[:n]...)); err != nil {
			o.log.Debug("fleet: unsubscribe failed", "topics", n, "err", err)
			return
		}
		last = last[n:]
	}
}

// unregister removes s from filters and returns the filters left without
// a sink.
func (o *Operator) unregister(filters []string, s *sink) (last []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, f := range filters {
		sinks, ok := o.sinks[f]
		if !ok {
			continue
		}
		delete(sinks, s)
		if len(sinks) == 0 {
			delete(o.sinks, f)
			last = append(last, f)
		}
	}
	return last
}

// Close stops the watches, waits for them, and disconnects. It is safe to
// call more than once.
func (o *Operator) Close() {
	o.closeOnce.Do(func() {
		o.closeLife()
		o.subMu.Lock() // no watch starts after this; see addSink
		o.subMu.Unlock()
		o.wg.Wait()
		o.client.Disconnect(250)
		o.release() // after the disconnection: see dispatch
	})
}

// queue is an unbounded-until-watchQueue FIFO between paho's delivery
// goroutine (push, never blocks) and a watch pump (pop).
type queue[T any] struct {
	log     *slog.Logger
	ready   chan struct{} // a push happened
	mu      sync.Mutex
	items   []T
	dropped int
}

func newQueue[T any](log *slog.Logger) *queue[T] {
	return &queue[T]{log: log, ready: make(chan struct{}, 1)}
}

func (q *queue[T]) push(v T) {
	q.mu.Lock()
	if len(q.items) >= watchQueue {
		q.items = q.items[1:]
		q.dropped++
		if q.dropped%watchQueue == 1 {
			q.log.Warn("fleet: watcher is not keeping up; dropping the oldest reports", "dropped", q.dropped)
		}
	}
	q.items = append(q.items, v)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *queue[T]) pop() (T, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var zero T
	if len(q.items) == 0 {
		return zero, false
	}
	v := q.items[0]
	q.items[0] = zero
	q.items = q.items[1:]
	return v, true
}
