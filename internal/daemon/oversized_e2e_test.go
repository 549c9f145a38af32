package daemon_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/runtime/store"
	"github.com/tern-iot/tern/runtime/store/backend"
)

// Issue 13, end to end through ternd and a real Mosquitto: a 224 KB target
// with 28,000 keys no module handles (a plan.failed whose explanation
// would be about 2 MB), then targets that converge, then, across a
// restart, an event report over the payload limit left in the device's
// outbox (as a ternd that numbered it before the bound would have). A
// consumer on the events topic sees every Seq from 1, contiguous, across
// the restart, every report readable: the oversized one as a marker with
// its kind and "truncated": true, and every event after it.
func TestOversizedEventEndToEnd(t *testing.T) {
	t.Parallel()
	url := fleettest.Mosquitto(t)
	events := collectEvents(t, url, "pi-001")
	k := newKeys(t)
	v := watchFleet(t, url)
	d := newTernd(t, url, k.pub, evilModule(t, k))

	v.push(t, 1, `{"fixed":{"a":true}}`, k.trusted)
	events.waitFor(t, "converged at target 1", isEvent(runtime.EventConverged, 1))

	var big strings.Builder
	big.WriteString(`{"u":{`)
	for i := range 28000 {
		if i > 0 {
			big.WriteByte(',')
		}
		fmt.Fprintf(&big, `"%s":1`, strconv.FormatInt(int64(i), 36))
	}
	big.WriteString(`}}`)
	if n := big.Len(); n < 200<<10 || n > fleet.MaxPayload-4<<10 {
		t.Fatalf("the big target is %d bytes; it should be about 224 KB, under the payload limit", n)
	}
	v.push(t, 2, big.String(), k.trusted)
	failed := events.waitFor(t, "plan.failed at target 2", isEvent(runtime.EventPlanFailed, 2))
	if failed.size > 16<<10 {
		t.Errorf("the plan.failed report is %d bytes; the device should cut it", failed.size)
	}
	if len(failed.Message) > 8<<10-100 && !failed.Truncated && !strings.Contains(failed.Message, "bytes cut)") {
		t.Errorf("the plan.failed message was cut without a visible marker: …%s", failed.Message[len(failed.Message)-100:])
	}
	t.Logf("target 2: %d bytes; its plan.failed report: %d bytes", big.Len(), failed.size)
	for _, version := range []uint64{3, 4} {
		v.push(t, version, fmt.Sprintf(`{"fixed":{"v%d":true}}`, version), k.trusted)
		events.waitFor(t, fmt.Sprintf("converged at target %d", version), isEvent(runtime.EventConverged, version))
	}

	d.stop()
	injected := injectReport(t, filepath.Join(d.cfg.DataDir, "store"), events.epoch(t), 2<<20)
	d.start()
	events.waitFor(t, "the injected report", func(r fleet.EventReport) bool { return r.Seq == injected })
	v.push(t, 5, `{"fixed":{"v5":true}}`, k.trusted)
	events.waitFor(t, "converged at target 5", isEvent(runtime.EventConverged, 5))

	got := events.contiguous(t)
	r := got[injected-1]
	if !r.Truncated || r.Kind != runtime.EventTaskFailed || r.ID != "injected" ||
		!strings.Contains(r.Message, "event too large to send (") || !strings.Contains(r.Message, "full text in the device log") {
		t.Errorf("injected report arrived as %+v; want a marker: kind task.failed, id kept, truncated, saying why", r)
	}
	var after []string
	for _, r := range got[injected:] {
		after = append(after, fmt.Sprintf("%d:%s@%d", r.Seq, r.Kind, r.TargetVersion))
	}
	if !strings.Contains(strings.Join(after, " "), ":converged@5") {
		t.Errorf("events after the injected one: %v; want target 5's, converged included", after)
	}
	t.Logf("%d events, Seq 1..%d contiguous; injected %d: %s", len(got), len(got), injected, r.Message)
}

// injectReport stores, while ternd is stopped, an event report with a
// message of size bytes in the outbox kept in the store in dir, numbered
// after every report there, as a ternd from before the bound would have
// left it, and returns its Seq. The layout is fleet's (fleet/outbox.go).
func injectReport(t *testing.T, dir, epoch string, size int) uint64 {
	t.Helper()
	st, err := backend.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	prefix := []byte("fleet/outbox/event/")
	var last uint64
	if b, err := st.Get([]byte("fleet/outbox/acked")); err == nil {
		if last, err = strconv.ParseUint(string(b), 10, 64); err != nil {
			t.Fatal(err)
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	if err := st.Scan(prefix, func(key, _ []byte) error {
		last = max(last, binary.BigEndian.Uint64(key[len(prefix):]))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	seq := last + 1
	r := fleet.EventReport{Format: fleet.ReportFormat, Device: "pi-001", Epoch: epoch, Seq: seq, Event: runtime.Event{
		ID: "injected", Time: time.Now().UTC(), Kind: runtime.EventTaskFailed, TargetVersion: 4, Module: "evil", Job: "poke",
		Message: strings.Repeat("x", size),
	}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(binary.BigEndian.AppendUint64(prefix, seq), b); err != nil {
		t.Fatal(err)
	}
	return seq
}

// eventLog is a consumer of one device's events topic that keeps every
// report it receives, and every payload it could not read.
type eventLog struct {
	mu   sync.Mutex
	got  []seen
	bad  []string
	more chan struct{}
}

type seen struct {
	fleet.EventReport
	size int
}

func collectEvents(t *testing.T, url, device string) *eventLog {
	t.Helper()
	l := &eventLog{more: make(chan struct{}, 1)}
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetConnectTimeout(wait).SetOrderMatters(true))
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("event consumer: connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	topic := relTopics.Events(device)
	tok := c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
		r, err := fleet.ParseEventReport(m.Payload())
		l.mu.Lock()
		if err != nil {
			l.bad = append(l.bad, fmt.Sprintf("%.200s", err))
		} else {
			l.got = append(l.got, seen{r, len(m.Payload())})
		}
		l.mu.Unlock()
		select {
		case l.more <- struct{}{}:
		default:
		}
	})
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("event consumer: subscribe %s: %v", topic, tok.Error())
	}
	return l
}

func isEvent(kind runtime.EventKind, version uint64) func(fleet.EventReport) bool {
	return func(r fleet.EventReport) bool { return r.Kind == kind && r.TargetVersion == version }
}

// waitFor waits for a report that satisfies ok and returns it. The wait is
// long: planning 28,000 keys under the race detector on a busy machine.
func (l *eventLog) waitFor(t *testing.T, what string, ok func(fleet.EventReport) bool) seen {
	t.Helper()
	deadline := time.After(4 * wait)
	for i := 0; ; {
		l.mu.Lock()
		if len(l.bad) > 0 { // a report a consumer drops: lost to it
			defer l.mu.Unlock()
			t.Fatalf("waiting for %s: the consumer could not read %d reports: %v; seen: %s", what, len(l.bad), l.bad, l.summaryLocked())
		}
		for ; i < len(l.got); i++ {
			if ok(l.got[i].EventReport) {
				r := l.got[i]
				l.mu.Unlock()
				return r
			}
		}
		l.mu.Unlock()
		select {
		case <-l.more:
		case <-deadline:
			t.Fatalf("no event report with %s within %v; seen: %s; unreadable: %v", what, 4*wait, l.summary(), l.unreadable())
		}
	}
}

func (l *eventLog) epoch(t *testing.T) string {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.got) == 0 || l.got[0].Epoch == "" {
		t.Fatal("no event with an epoch seen yet")
	}
	return l.got[0].Epoch
}

// contiguous checks that, duplicates dropped (fleet.Dedup), the reports
// are Seq 1..n of one epoch with none missing and none unreadable, and
// returns them in Seq order.
func (l *eventLog) contiguous(t *testing.T) []fleet.EventReport {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.bad) > 0 {
		t.Errorf("the consumer could not read %d reports: %v", len(l.bad), l.bad)
	}
	var d fleet.Dedup
	var out []fleet.EventReport
	for _, r := range l.got {
		if d.Fresh(r.EventReport) {
			out = append(out, r.EventReport)
		}
	}
	for i, r := range out {
		if r.Seq != uint64(i+1) || r.Epoch != out[0].Epoch {
			t.Fatalf("report %d has Seq %d (epoch %s, first %s): Seq must run 1, 2, 3… with none missing; seen: %s", i, r.Seq, r.Epoch, out[0].Epoch, l.summaryLocked())
		}
	}
	return out
}

func (l *eventLog) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.summaryLocked()
}

func (l *eventLog) summaryLocked() string {
	var b bytes.Buffer
	for _, r := range l.got {
		fmt.Fprintf(&b, "%d:%s@%d ", r.Seq, r.Kind, r.TargetVersion)
	}
	return b.String()
}

func (l *eventLog) unreadable() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.bad...)
}
