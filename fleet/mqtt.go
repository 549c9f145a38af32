package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// qos is the MQTT quality of service of everything the contract
// publishes: at least once. Versions and event ids make duplicates
// harmless.
const qos = 1

// stateQoS is the QoS a device subscribes to retained state at, and
// fetches chunks at: 0 (see Device.announce).
const stateQoS = 0

// Online payloads (retained on Topics.Online).
const (
	onlineTrue  = "true"
	onlineFalse = "false"
)

// dialFunc opens the network connection to the broker. TLS wraps it
// (tlsDial), and tests replace it to cut a connection abruptly.
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// brokerURL checks a broker address and returns it normalized:
// tcp://host:port for plain TCP (tcp://, mqtt://; port 1883 by default) or
// ssl://host:port for TLS (ssl://, tls://, mqtts://; port 8883 by default).
// brokerURLs checks the broker address, or the list of them, of which
// exactly one must be given.
func brokerURLs(one string, list []string) ([]string, error) {
	switch {
	case one != "" && len(list) > 0:
		return nil, errors.New("fleet: both Broker and Brokers are set; give one address in Broker, or the nodes of a cluster in Brokers")
	case len(list) == 0:
		u, err := brokerURL(one)
		if err != nil {
			return nil, err
		}
		return []string{u}, nil
	}
	seen := map[string]bool{}
	out := make([]string, 0, len(list))
	for i, s := range list {
		u, err := brokerURL(s)
		if err != nil {
			return nil, fmt.Errorf("broker %d of %d: %w", i+1, len(list), err)
		}
		if seen[u] {
			return nil, fmt.Errorf("fleet: broker %s is listed twice; list each node once", u)
		}
		seen[u] = true
		out = append(out, u)
	}
	return out, nil
}

func brokerURL(s string) (string, error) {
	hint := "use tcp://host:port, e.g. tcp://localhost:1883, or ssl://host:port for TLS, e.g. ssl://broker.example:8883"
	if s == "" {
		return "", fmt.Errorf("fleet: no broker address; %s", hint)
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("fleet: broker address %q: %w; %s", s, err, hint)
	}
	scheme, port := "tcp", "1883"
	switch u.Scheme {
	case "tcp", "mqtt":
	case "ssl", "tls", "mqtts":
		scheme, port = "ssl", DefaultTLSPort
	case "":
		return "", fmt.Errorf("fleet: broker address %q has no scheme; %s", s, hint)
	default:
		return "", fmt.Errorf("fleet: broker address %q: scheme %q is not supported; %s", s, u.Scheme, hint)
	}
	if u.Hostname() == "" {
		return "", fmt.Errorf("fleet: broker address %q has no host; %s", s, hint)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
		return "", fmt.Errorf("fleet: broker address %q: only scheme, host and port are used; %s", s, hint)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), port)
	}
	return scheme + "://" + host, nil
}

// openConn adapts a dialFunc to paho, with a TLS handshake on ssl:// URLs
// (brokerURL's normal form). ctx bounds every dial: once it is done, no new
// connection is made.
func openConn(ctx context.Context, timeout time.Duration, dial dialFunc, files TLSFiles) paho.OpenConnectionFunc {
	if dial == nil {
		d := &net.Dialer{KeepAlive: 30 * time.Second}
		dial = d.DialContext
	}
	secure := tlsDial(dial, files)
	return func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if u.Scheme == "ssl" {
			return secure(ctx, "tcp", u.Host)
		}
		return dial(ctx, "tcp", u.Host)
	}
}

// connectionWatch is how often a wait for an acknowledgement checks that
// the connection is still up.
const connectionWatch = 100 * time.Millisecond

// waitToken waits for tok to complete. It returns ctx.Err() when ctx is
// done, and ErrOffline when the connection goes down first: paho keeps an
// unacknowledged QoS 1 message and resends it after reconnecting, but the
// caller must not count on it.
func waitToken(ctx context.Context, c paho.Client, tok paho.Token) error {
	tick := time.NewTicker(connectionWatch)
	defer tick.Stop()
	for {
		select {
		case <-tok.Done():
			return tok.Error()
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if !c.IsConnectionOpen() {
				select {
				case <-tok.Done():
					return tok.Error()
				default:
					return ErrOffline
				}
			}
		}
	}
}

// lostConnection reports whether err means the connection went away:
// ErrOffline from waitToken, or a network error paho put in a token.
func lostConnection(err error) bool {
	var ne net.Error
	return errors.Is(err, ErrOffline) || errors.Is(err, paho.ErrNotConnected) ||
		errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.As(err, &ne)
}

// subscribe subscribes c to filters at QoS 1 and waits for the broker's
// answers. Messages reach the routes added before, or the default handler.
// The filters go out up to maxSubscribeFilters in one SUBSCRIBE packet, so
// that an operator reading the targets of a thousand devices waits for a
// few round trips, not a thousand.
func subscribe(ctx context.Context, c paho.Client, filters ...string) error {
	return subscribeAt(ctx, c, qos, filters...)
}

// subscribeAt is subscribe at QoS q.
func subscribeAt(ctx context.Context, c paho.Client, q byte, filters ...string) error {
	for len(filters) > 0 {
		n := min(len(filters), maxSubscribeFilters)
		if err := subscribeBatch(ctx, c, q, filters[:n]); err != nil {
			return err
		}
		filters = filters[n:]
	}
	return nil
}

// maxSubscribeFilters is how many topic filters one SUBSCRIBE packet
// carries at most: some 100 KiB of the longest topics, far below what
// brokers accept in a packet.
const maxSubscribeFilters = 500

func subscribeBatch(ctx context.Context, c paho.Client, q byte, filters []string) error {
	m := make(map[string]byte, len(filters))
	for _, f := range filters {
		m[f] = q
	}
	tok := c.SubscribeMultiple(m, nil)
	if err := waitToken(ctx, c, tok); err != nil {
		return err
	}
	st, ok := tok.(*paho.SubscribeToken)
	if !ok {
		return nil
	}
	for _, f := range filters {
		if code, ok := st.Result()[f]; ok && code > q {
			return refusedSubscription(filters, f, code)
		}
	}
	return nil
}

// refusedSubscription says the broker refused filter (one of filters, the
// topic is named when there are several).
func refusedSubscription(filters []string, filter string, code byte) error {
	if len(filters) == 1 {
		return fmt.Errorf("the broker refused the subscription (code %#x); check its access rules for this client", code)
	}
	return fmt.Errorf("the broker refused the subscription to %s (code %#x); check its access rules for this client", filter, code)
}

// backoff returns the delay after prev: doubling from a start of one
// second (or max if smaller) up to max, with ±20% jitter so that a fleet
// rebooted together does not reconnect in lock step.
func backoff(prev, max time.Duration) time.Duration {
	next := 2 * prev
	if prev == 0 {
		next = time.Second
	}
	next = min(next, max)
	jitter := time.Duration(rand.Int64N(int64(next)/5 + 1))
	if rand.IntN(2) == 0 {
		return next - jitter
	}
	return min(next+jitter, max)
}

// orDiscard returns l, or a logger that drops everything.
func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// noStore is a paho.Store that keeps nothing, so paho never resends
// unacknowledged publishes by itself after a reconnect. paho's resend
// (client.resume) races with a publish that was still queued for the lost
// connection and crashes the process ("close of closed channel"); see
// RATIONALE.md. Callers get ErrOffline instead and retry.
type noStore struct{}

var _ paho.Store = noStore{}

func (noStore) Open()                             {}
func (noStore) Put(string, packets.ControlPacket) {}
func (noStore) Get(string) packets.ControlPacket  { return nil }
func (noStore) All() []string                     { return nil }
func (noStore) Del(string)                        {}
func (noStore) Close()                            {}
func (noStore) Reset()                            {}
