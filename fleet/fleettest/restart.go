package fleettest

import (
	"log/slog"
	"sync"
	"testing"

	"github.com/tern-iot/tern/fleet/devbroker"
)

// Restartable is a broker a test can stop and start again on the same
// address.
type Restartable struct {
	// URL is the broker's address, the same across restarts.
	URL string

	t     testing.TB
	addr  string
	start func() (stop func())

	mu   sync.Mutex
	stop func() // nil while stopped
}

// Stop stops the broker: clients see their connections drop and cannot
// connect until Start. Stopping a stopped broker does nothing.
func (r *Restartable) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stop != nil {
		r.stop()
		r.stop = nil
	}
}

// Start starts the broker again on the same address; it fails the test if
// the broker does not come up.
func (r *Restartable) Start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stop == nil {
		r.stop = r.start()
	}
}

func newRestartable(t testing.TB, addr string, start func() (stop func())) *Restartable {
	r := &Restartable{URL: "tcp://" + addr, t: t, addr: addr, start: start}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// RestartableMosquitto starts mosquitto on a free port with persistence
// on, as fleets run it: sessions, subscriptions, retained messages and the
// messages queued for offline clients survive a restart (mosquitto writes
// its database when stopped with SIGTERM).
func RestartableMosquitto(t testing.TB) *Restartable {
	t.Helper()
	bin := mosquittoBinary(t)
	addr := FreeAddr(t)
	dir := t.TempDir()
	extra := "allow_anonymous true\npersistence true\npersistence_location " + dir + "/\n"
	return newRestartable(t, addr, func() func() {
		stop, log, err := launchMosquitto(t, bin, addr, extra)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("mosquitto %s log:\n%s", addr, log)
			}
		})
		return stop
	})
}

// RestartableEmbedded starts the embedded broker on a free port, each time
// without a data directory, so it keeps nothing across a restart:
// sessions, subscriptions and retained messages start empty. setup, if not nil, runs
// on every start before the broker accepts connections, e.g. to watch
// topics with [broker.Broker.Subscribe] from the first message on.
func RestartableEmbedded(t testing.TB, setup func(*devbroker.Broker) error) *Restartable {
	t.Helper()
	addr := FreeAddr(t)
	return newRestartable(t, addr, func() func() {
		log := new(LogBuffer)
		b, err := devbroker.New(addr, slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})))
		if err != nil {
			t.Fatal(err)
		}
		if setup != nil {
			if err := setup(b); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("embedded broker %s log:\n%s", addr, log)
			}
		})
		return func() { closeBroker(t, b) }
	})
}
