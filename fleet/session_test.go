package fleet_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/runtime/api"
)

// followed collects what FollowEvents hands over.
type followed struct {
	mu   sync.Mutex
	seqs []uint64
	more chan struct{}
}

func (f *followed) handle(r fleet.EventReport) {
	f.mu.Lock()
	f.seqs = append(f.seqs, r.Seq)
	f.mu.Unlock()
	select {
	case f.more <- struct{}{}:
	default:
	}
}

// until waits until every seq from `from` to n arrived, and returns them
// all (copies included).
func (f *followed) until(t *testing.T, from, n uint64) []uint64 {
	t.Helper()
	deadline := time.After(wait)
	for {
		f.mu.Lock()
		got := slices.Clone(f.seqs)
		f.mu.Unlock()
		all := true
		for q := from; q <= n; q++ {
			all = all && slices.Contains(got, q)
		}
		if all {
			return got
		}
		select {
		case <-f.more:
		case <-deadline:
			t.Fatalf("after %v, got seqs %v, want %d..%d", wait, got, from, n)
		}
	}
}

func follow(t *testing.T, url, session string) (*fleet.Operator, *followed) {
	t.Helper()
	op, err := fleet.DialOperator(t.Context(), fleet.OperatorOptions{
		Broker: url, Topics: topics, Session: session, Logger: fleettest.Logger(t, "operator "+session), ConnectTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(op.Close)
	f := &followed{more: make(chan struct{}, 1)}
	if err := op.FollowEvents(t.Context(), fleet.AnyDevice, f.handle); err != nil {
		t.Fatal(err)
	}
	return op, f
}

// An Operator with a persistent session gets, when it comes back, the
// events published while it was closed: the broker queued them.
func TestFollowEventsPersistentSession(t *testing.T) {
	forEachBroker(t, func(t *testing.T, url string) {
		d := newDevice(t, testOptions(url, "pi-001"))
		run(t, d)
		waitConnected(t, d)
		publish := func(from, to int) {
			for i := from; i <= to; i++ {
				if err := d.PublishEvent(t.Context(), api.Event{ID: fmt.Sprint("e", i), Time: time.Now(), Kind: "task.done"}); err != nil {
					t.Fatal(err)
				}
			}
		}
		op, f := follow(t, url, "exporter-1")
		publish(1, 3)
		f.until(t, 1, 3)
		op.Close()

		publish(4, 9) // nobody connected: the broker queues them for the session
		waitOutboxEmpty(t, d)
		_, f = follow(t, url, "exporter-1")
		got := f.until(t, 4, 9)
		for _, q := range got {
			if q < 4 {
				// A copy of a report acknowledged before Close may
				// come (its acknowledgement lost at the close): the
				// consumer's Dedup drops it. Nothing is lost.
				t.Logf("copy of seq %d came again", q)
			}
		}
	})
}

// A session is a client id: a bad one is refused before connecting, and
// so is a ClientID that differs from it.
func TestSessionOption(t *testing.T) {
	for _, opts := range []fleet.OperatorOptions{
		{Broker: "tcp://127.0.0.1:1", Topics: topics, Session: "a/b"},
		{Broker: "tcp://127.0.0.1:1", Topics: topics, Session: "a", ClientID: "b"},
	} {
		if _, err := fleet.DialOperator(context.Background(), opts); err == nil {
			t.Errorf("%+v: connected", opts)
		} else {
			t.Log(err)
		}
	}
}

// waitOutboxEmpty waits until the broker acknowledged every event d
// published.
func waitOutboxEmpty(t *testing.T, d *fleet.Device) {
	t.Helper()
	for deadline := time.Now().Add(wait); ; time.Sleep(10 * time.Millisecond) {
		acked, pending := d.Outbox()
		if pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox: %d events wait after seq %d after %v", pending, acked, wait)
		}
	}
}
