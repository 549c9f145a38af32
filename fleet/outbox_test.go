package fleet_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/devbroker"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/runtime/api"
)

// restartable starts a broker the test can stop and start, and an
// auditor of device's events that misses nothing across restarts: with
// Mosquitto a client with a persistent session (Mosquitto persists it),
// with the embedded broker, which RestartableEmbedded runs without a data
// directory so that it forgets sessions, a subscription in the broker made
// before it accepts connections.
var restartable = map[string]func(t *testing.T, device string) (*fleettest.Restartable, *auditor){
	"embedded": func(t *testing.T, device string) (*fleettest.Restartable, *auditor) {
		a := &auditor{more: make(chan struct{}, 1)}
		b := fleettest.RestartableEmbedded(t, func(b *devbroker.Broker) error {
			return b.Subscribe(topics.Events(device), func(_ string, payload []byte) { a.add(payload) })
		})
		return b, a
	},
	"mosquitto": func(t *testing.T, device string) (*fleettest.Restartable, *auditor) {
		b := fleettest.RestartableMosquitto(t)
		return b, newAuditor(t, b.URL, device)
	},
}

// auditor is an event consumer with a persistent session, as a fleet's
// audit log or `tern watch` with a session would be: the broker queues
// events for it while it is away, including across a broker restart. It
// keeps every report it receives, duplicates included.
type auditor struct {
	mu   sync.Mutex
	got  []fleet.EventReport
	bad  []string
	more chan struct{}
}

func newAuditor(t *testing.T, url, device string) *auditor {
	t.Helper()
	a := &auditor{more: make(chan struct{}, 1)}
	o := paho.NewClientOptions().AddBroker(url).SetClientID("audit-" + device).
		SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(100 * time.Millisecond).SetMaxReconnectInterval(200 * time.Millisecond).
		SetOrderMatters(true) // the default keep-alive: see testOptions
	topic := topics.Events(device)
	handler := func(_ paho.Client, m paho.Message) { a.add(m.Payload()) }
	o.SetOnConnectHandler(func(c paho.Client) { c.Subscribe(topic, 1, handler) })
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("auditor: connect: %v", tok.Error())
	}
	// The first subscription must be in place before the device publishes.
	if tok := c.Subscribe(topic, 1, handler); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("auditor: subscribe: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return a
}

func (a *auditor) add(payload []byte) {
	r, err := fleet.ParseEventReport(payload)
	a.mu.Lock()
	if err != nil {
		a.bad = append(a.bad, err.Error())
	} else {
		a.got = append(a.got, r)
	}
	a.mu.Unlock()
	select {
	case a.more <- struct{}{}:
	default:
	}
}

// deduplicated returns the reports as a consumer with a fleet.Dedup sees
// them, and how many it dropped as duplicates.
func (a *auditor) deduplicated() (out []fleet.EventReport, dups int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var d fleet.Dedup
	for _, r := range a.got {
		if !d.Fresh(r) {
			dups++
			continue
		}
		out = append(out, r)
	}
	return out, dups
}

// waitFor waits until the auditor has seen Seq n.
func (a *auditor) waitFor(t *testing.T, n uint64) {
	t.Helper()
	deadline := time.After(3 * wait)
	for {
		a.mu.Lock()
		seen := len(a.got) > 0 && a.got[len(a.got)-1].Seq >= n
		a.mu.Unlock()
		if seen {
			return
		}
		select {
		case <-a.more:
		case <-deadline:
			got, dups := a.deduplicated()
			t.Fatalf("auditor: Seq %d not seen after %v; %d reports (%d duplicates), last %v, refused %v", n, 3*wait, len(got), dups, lastSeq(got), a.bad)
		}
	}
}

func lastSeq(rs []fleet.EventReport) uint64 {
	if len(rs) == 0 {
		return 0
	}
	return rs[len(rs)-1].Seq
}

// checkExactlyOnce checks that, after dropping duplicates, the auditor saw
// events 1..n in the order they were made, each once, with their ids.
func checkExactlyOnce(t *testing.T, a *auditor, n int, id func(i int) string) {
	t.Helper()
	got, dups := a.deduplicated()
	if len(got) != n {
		t.Fatalf("got %d distinct events, want %d (last Seq %d)", len(got), n, lastSeq(got))
	}
	for i, r := range got {
		if r.Seq != uint64(i+1) || r.ID != id(i) {
			t.Fatalf("event %d: Seq %d id %q, want Seq %d id %q", i, r.Seq, r.ID, i+1, id(i))
		}
	}
	if len(a.bad) > 0 {
		t.Errorf("refused reports: %v", a.bad)
	}
	t.Logf("%d events delivered in order, %d duplicates dropped by Seq", n, dups)
}

func waitDrained(t *testing.T, d *fleet.Device) {
	t.Helper()
	for deadline := time.Now().Add(3 * wait); ; time.Sleep(20 * time.Millisecond) {
		if _, pending := d.Outbox(); pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			acked, pending := d.Outbox()
			t.Fatalf("outbox not drained after %v: acknowledged up to %d, %d pending", 3*wait, acked, pending)
		}
	}
}

// The broker is stopped for a while in the middle of a run, and started
// again. The device keeps making events meanwhile: every one arrives
// afterwards, in order, none twice once the consumer drops repeated Seqs.
func TestOutboxAcrossBrokerOutage(t *testing.T) {
	t.Parallel()
	for name, start := range restartable {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			broker, audit := start(t, "pi-020")
			d := newDevice(t, testOptions(broker.URL, "pi-020"))
			run(t, d)
			waitConnected(t, d)

			var made atomic.Int64
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				tick := time.NewTicker(5 * time.Millisecond)
				defer tick.Stop()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					if err := d.PublishEvent(t.Context(), api.Event{ID: fmt.Sprintf("e-%d", i), Kind: api.EventDrift}); err != nil {
						t.Errorf("PublishEvent: %v", err)
						return
					}
					made.Add(1)
				}
			}()

			time.Sleep(300 * time.Millisecond)
			broker.Stop()
			before := made.Load()
			time.Sleep(1500 * time.Millisecond)
			during := made.Load() - before
			if d.Connected() {
				t.Fatal("device connected while the broker is stopped")
			}
			broker.Start()
			waitConnected(t, d)
			time.Sleep(300 * time.Millisecond)
			close(stop)
			<-done

			n := int(made.Load())
			waitDrained(t, d)
			audit.waitFor(t, uint64(n))
			t.Logf("%d events made while the broker was down", during)
			checkExactlyOnce(t, audit, n, func(i int) string { return fmt.Sprintf("e-%d", i) })
		})
	}
}

// Reports made while offline survive a restart of the device: a new
// Device on the same store sends them, and numbering goes on after them.
func TestOutboxSurvivesRestart(t *testing.T) {
	t.Parallel()
	addr := fleettest.FreeAddr(t)
	dir := t.TempDir()
	st := fleettest.StoreAt(t, dir)
	first := newDevice(t, fleet.DeviceOptions{
		Broker: "tcp://" + addr, Topics: topics, Device: "pi-021", Store: st,
		ConnectTimeout: time.Second, MaxRetryInterval: 200 * time.Millisecond,
	})
	stopFirst := run(t, first)
	for i := range 50 {
		if err := first.PublishEvent(t.Context(), api.Event{ID: fmt.Sprintf("e-%d", i), Kind: api.EventTaskDone}); err != nil {
			t.Fatal(err)
		}
	}
	stopFirst()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	url := fleettest.EmbeddedAt(t, addr)
	audit := newAuditor(t, url, "pi-021")
	opts := testOptions(url, "pi-021")
	opts.Store = fleettest.StoreAt(t, dir)
	second := newDevice(t, opts)
	if _, pending := second.Outbox(); pending != 50 {
		t.Fatalf("after the restart the outbox holds %d reports, want 50", pending)
	}
	run(t, second)
	if err := second.PublishEvent(t.Context(), api.Event{ID: "e-50", Kind: api.EventConverged}); err != nil {
		t.Fatal(err)
	}
	audit.waitFor(t, 51)
	checkExactlyOnce(t, audit, 51, func(i int) string { return fmt.Sprintf("e-%d", i) })
}

// A device whose store is wiped (re-flashed) numbers its events from 1
// again, under a new epoch: a consumer that saw the old numbering takes
// the new events as new, not as copies.
func TestOutboxWipedStore(t *testing.T) {
	t.Parallel()
	url := fleettest.Embedded(t)
	audit := newAuditor(t, url, "pi-023")
	for round, n := range []int{5, 3} {
		opts := testOptions(url, "pi-023") // a new, empty store each round
		d := newDevice(t, opts)
		stop := run(t, d)
		for i := range n {
			if err := d.PublishEvent(t.Context(), api.Event{ID: fmt.Sprintf("r%d-e%d", round, i), Kind: api.EventDrift}); err != nil {
				t.Fatal(err)
			}
		}
		waitDrained(t, d)
		stop()
	}
	got, dups := audit.deduplicated()
	var ids []string
	epochs := map[string]bool{}
	for _, r := range got {
		ids = append(ids, fmt.Sprintf("%s#%d", r.ID, r.Seq))
		epochs[r.Epoch] = true
	}
	if want := "[r0-e0#1 r0-e1#2 r0-e2#3 r0-e3#4 r0-e4#5 r1-e0#1 r1-e1#2 r1-e2#3]"; fmt.Sprint(ids) != want {
		t.Errorf("consumer saw %v (%d dropped as copies), want %s", ids, dups, want)
	}
	if len(epochs) != 2 || epochs[""] {
		t.Errorf("epochs %v: want two, one per store", epochs)
	}
}

// A full outbox drops the oldest reports and says so once connected, even
// if the device was power-cycled before it could connect.
func TestOutboxFullDropsOldestAndSaysSo(t *testing.T) {
	t.Parallel()
	addr := fleettest.FreeAddr(t)
	dir := t.TempDir()
	st := fleettest.StoreAt(t, dir)
	opts := testOptions("tcp://"+addr, "pi-022")
	opts.OutboxLimit = 5
	opts.Store = st
	first := newDevice(t, opts)
	for i := range 8 { // before Run: the device has never been connected
		if err := first.PublishEvent(t.Context(), api.Event{ID: fmt.Sprintf("e-%d", i), Kind: api.EventDrift}); err != nil {
			t.Fatal(err)
		}
	}
	if acked, pending := first.Outbox(); acked != 3 || pending != 5 {
		t.Fatalf("outbox: acknowledged mark %d, %d pending; want 3 (dropped) and 5", acked, pending)
	}
	if err := st.Close(); err != nil { // the power cycle
		t.Fatal(err)
	}
	opts.Store = fleettest.StoreAt(t, dir)
	d := newDevice(t, opts)
	url := fleettest.EmbeddedAt(t, addr)
	audit := newAuditor(t, url, "pi-022")
	run(t, d)
	audit.waitFor(t, 9)
	got, _ := audit.deduplicated()
	var seqs []uint64
	for _, r := range got {
		seqs = append(seqs, r.Seq)
	}
	if fmt.Sprint(seqs) != "[4 5 6 7 8 9]" {
		t.Fatalf("got Seqs %v, want [4 5 6 7 8 9]", seqs)
	}
	last := got[len(got)-1]
	if last.Kind != api.EventReportsDropped || !strings.Contains(last.Message, "3 event reports were dropped") || !strings.Contains(last.Message, "outbox_limit") {
		t.Errorf("last report: %+v, want an events.dropped report counting 3 and naming outbox_limit", last)
	}
}

// stallConn holds up the next PUBACK the device writes (a packet paho
// writes without a deadline) for a while, as a stalled link would.
type stallConn struct {
	net.Conn
	stall *atomic.Bool
}

func (c *stallConn) Write(p []byte) (int, error) {
	if len(p) > 0 && p[0]>>4 == 4 && c.stall.CompareAndSwap(true, false) {
		time.Sleep(2500 * time.Millisecond)
	}
	return c.Conn.Write(p)
}

// A stalled link makes paho give up writing an event report (its write
// timeout) while the connection still looks open. No later report may
// overtake it, and sending must not stop: the device reconnects and sends
// again, in order, from the first report not acknowledged.
func TestPublishTimeoutKeepsOrder(t *testing.T) {
	t.Parallel()
	url := fleettest.Embedded(t)
	audit := newAuditor(t, url, "pi-024")
	var stall atomic.Bool
	opts := testOptions(url, "pi-024")
	opts.ConnectTimeout = time.Second // paho's write timeout
	opts.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := new(net.Dialer).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &stallConn{Conn: c, stall: &stall}, nil
	}
	d := newDevice(t, opts)
	run(t, d)
	waitConnected(t, d)
	op := dialOperator(t, url)
	stall.Store(true)
	// The target's PUBACK is the write that stalls.
	if err := op.PushTarget(t.Context(), "pi-024", fleet.TargetEnvelope{Version: 1, Target: []byte(`{"a":1}`)}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	for i := range 6 {
		if err := d.PublishEvent(t.Context(), api.Event{ID: fmt.Sprintf("e-%d", i), Kind: api.EventDrift}); err != nil {
			t.Fatal(err)
		}
	}
	audit.waitFor(t, 6)
	if err := d.PublishEvent(t.Context(), api.Event{ID: "e-6", Kind: api.EventDrift}); err != nil {
		t.Fatal(err)
	}
	audit.waitFor(t, 7)
	checkExactlyOnce(t, audit, 7, func(i int) string { return fmt.Sprintf("e-%d", i) })
}
