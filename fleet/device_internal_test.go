package fleet

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-iot/tern/runtime/api"
)

func newTestDevice(t *testing.T, groups ...string) *Device {
	t.Helper()
	d, err := NewDevice(DeviceOptions{Broker: "tcp://127.0.0.1:1", Topics: Topics{Fleet: "demo"}, Device: "pi-001", Groups: groups, Store: testStore(t, t.TempDir())})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestTargetsKeepHighestVersion(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []uint64
		want uint64
	}{
		{"newest wins", []uint64{1, 2, 3, 4, 5}, 5},
		{"older arrival does not replace newer", []uint64{5, 3}, 5},
		{"equal version: the later one", []uint64{2, 2}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newTestDevice(t)
			for _, v := range tc.in {
				d.offerTarget(ScopedTarget{Scope: "device/d", TargetEnvelope: TargetEnvelope{Format: Format, Version: v, Target: []byte(`{}`)}})
			}
			if got := (<-d.Targets()).Version; got != tc.want {
				t.Errorf("got version %d, want %d", got, tc.want)
			}
			select {
			case env := <-d.Targets():
				t.Errorf("a second envelope (version %d) was waiting; the slot holds one", env.Version)
			default:
			}
		})
	}
}

// TestTargetsHammer offers versions as fast as paho could while a consumer
// takes them: offers never block, the consumer sees versions only grow, and
// the last one always arrives.
func TestTargetsHammer(t *testing.T) {
	const n = 20000
	d := newTestDevice(t)
	var wg sync.WaitGroup
	wg.Go(func() {
		for v := uint64(1); v <= n; v++ {
			d.offerTarget(ScopedTarget{Scope: "device/d", TargetEnvelope: TargetEnvelope{Format: Format, Version: v}})
		}
	})
	var last uint64
	for last < n {
		env := <-d.Targets()
		if env.Version <= last {
			t.Fatalf("version %d after %d", env.Version, last)
		}
		last = env.Version
	}
	wg.Wait()
}

// With groups, each scope keeps its own newest envelope.
func TestTargetsPerScope(t *testing.T) {
	d := newTestDevice(t, "heaters")
	for _, o := range []ScopedTarget{
		{Scope: "group/heaters", TargetEnvelope: TargetEnvelope{Version: 3}},
		{Scope: "device/d", TargetEnvelope: TargetEnvelope{Version: 7}},
		{Scope: "group/heaters", TargetEnvelope: TargetEnvelope{Version: 4}},
		{Scope: "device/d", TargetEnvelope: TargetEnvelope{Version: 6}},
	} {
		d.offerTarget(o)
	}
	got := map[string]uint64{}
	for range 2 {
		st := <-d.Targets()
		got[st.Scope] = st.Version
	}
	if got["group/heaters"] != 4 || got["device/d"] != 7 {
		t.Fatalf("kept %v, want group 4 and device 7", got)
	}
}

func TestRefusalsKeepNewest(t *testing.T) {
	d := newTestDevice(t)
	for i := range refusalBuffer + 4 {
		d.refuse(Refusal{Topic: fmt.Sprint(i), Err: errors.New("bad")})
	}
	if got := (<-d.Refusals()).Topic; got != "4" {
		t.Errorf("oldest kept refusal is %s, want 4", got)
	}
}

func TestChannelsCloseOnce(t *testing.T) {
	d := newTestDevice(t)
	d.closeChannels()
	d.offerTarget(ScopedTarget{TargetEnvelope: TargetEnvelope{Version: 1}}) // must not panic after close
	d.refuse(Refusal{})
	if _, ok := <-d.Targets(); ok {
		t.Error("Targets is open after close")
	}
	if _, ok := <-d.Refusals(); ok {
		t.Error("Refusals is open after close")
	}
}

// Every field of an event at its worst (long, and escaped by JSON at six
// bytes a character), or a time JSON cannot carry: the event is numbered
// and stored as a marker that a consumer reads, that keeps the kind and
// Seq, says it was cut, and fits the smallest report.
func TestMarkerIsBounded(t *testing.T) {
	worst := strings.Repeat("\x01", 64<<10) // well over minReport, and six times that once escaped
	for _, tc := range []struct {
		name string
		e    api.Event
		why  string
	}{
		{"message", api.Event{ID: "m", Kind: api.EventPlanFailed, Message: worst}, "too large to send"},
		{"path", api.Event{ID: "p", Kind: api.EventTaskFailed, Path: "/" + worst}, "too large to send"},
		{"every name", api.Event{ID: worst, Kind: api.EventKind(worst), Module: worst, Job: worst, Path: worst, Message: worst}, "too large to send"},
		{"time", api.Event{ID: "t", Kind: api.EventDrift, Time: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}, "could not be encoded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := NewDevice(DeviceOptions{Broker: "tcp://127.0.0.1:1", Topics: Topics{Fleet: "demo"}, Device: "pi-001",
				Store: testStore(t, t.TempDir()), MaxReport: minReport})
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if err := d.PublishEvent(t.Context(), api.Event{Kind: api.EventConverged}); err != nil {
					t.Fatal(err)
				}
			}
			if err := d.PublishEvent(t.Context(), tc.e); err != nil {
				t.Fatalf("PublishEvent: %v; an event is never refused for what it holds", err)
			}
			rs, err := d.out.read(2, 10)
			if err != nil || len(rs) != 1 {
				t.Fatalf("outbox after the event: %d reports, %v", len(rs), err)
			}
			b := rs[0].payload
			r, err := ParseEventReport(b)
			switch {
			case err != nil:
				t.Fatalf("the marker does not parse: %v", err)
			case len(b) > minReport:
				t.Errorf("marker is %d bytes, over %d", len(b), minReport)
			case r.Seq != 3 || !r.Truncated || r.Kind == "" || !strings.Contains(r.Message, tc.why):
				t.Errorf("marker %.400s: want Seq 3, truncated, a kind, a message saying %q", b, tc.why)
			case len(tc.e.Kind) < markerName && r.Kind != tc.e.Kind:
				t.Errorf("marker kind %q, want %q", r.Kind, tc.e.Kind)
			}
		})
	}
}

// A report in the outbox that can never be sent as it is (over the limit,
// not even JSON: a store from an older ternd, or damaged) is replaced in
// place by its marker, under its Seq, so a restart sends the marker too;
// one acknowledged meanwhile is left alone.
func TestSendableReplacesInPlace(t *testing.T) {
	st := testStore(t, t.TempDir())
	d, err := NewDevice(DeviceOptions{Broker: "tcp://127.0.0.1:1", Topics: Topics{Fleet: "demo"}, Device: "pi-001", Store: st, MaxReport: minReport})
	if err != nil {
		t.Fatal(err)
	}
	payloads := [][]byte{
		[]byte(`{"format":1,"device":"pi-001","seq":1,"kind":"drift"}`),
		append([]byte(`{"format":1,"device":"pi-001","seq":2,"kind":"task.failed","id":"big","message":"`), append(bytes.Repeat([]byte("x"), 64<<10), `"}`...)...),
		bytes.Repeat([]byte{0xff}, 64<<10), // not JSON at all
	}
	for _, p := range payloads {
		if err := d.out.append(func(string, uint64) ([]byte, error) { return p, nil }); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := d.out.read(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct {
		same bool
		kind api.EventKind
		id   string
	}{{true, api.EventDrift, ""}, {false, api.EventTaskFailed, "big"}, {false, api.EventReportsDropped, ""}} {
		got, err := d.sendable(rs[i])
		if err != nil {
			t.Fatal(err)
		}
		if want.same {
			if !bytes.Equal(got, payloads[i]) {
				t.Errorf("report %d changed: %s", i+1, got)
			}
			continue
		}
		r, err := ParseEventReport(got)
		if err != nil || r.Seq != uint64(i+1) || r.Kind != want.kind || r.ID != want.id || !r.Truncated || r.Epoch != d.out.epoch {
			t.Errorf("report %d sent as %s (%v); want a marker with Seq %d, kind %s, id %q, the outbox's epoch", i+1, got, err, i+1, want.kind, want.id)
		}
		stored, err := st.Get(outboxKey(uint64(i + 1)))
		if err != nil || !bytes.Equal(stored, got) {
			t.Errorf("report %d: the outbox holds %.100q (%v), not the marker sent", i+1, stored, err)
		}
	}
	// Acknowledged: a late replacement does not bring it back.
	if err := d.out.ack(3); err != nil {
		t.Fatal(err)
	}
	if err := d.out.replace(3, []byte("late")); err != nil {
		t.Fatal(err)
	}
	if b, _ := st.Get(outboxKey(3)); string(b) == "late" {
		t.Error("replace wrote over an acknowledged report")
	}
}

// A broker that drops the connection whenever a large report is in
// flight: after refusalStrikes losses with it in flight, it goes as a
// marker, and reports as large are cut at once from then on; a small
// report in flight at as many losses (a flapping link) is never cut.
func TestRefusalStrikes(t *testing.T) {
	d, err := NewDevice(DeviceOptions{Broker: "tcp://127.0.0.1:1", Topics: Topics{Fleet: "demo"}, Device: "pi-001", Store: testStore(t, t.TempDir())})
	if err != nil {
		t.Fatal(err)
	}
	small := api.Event{ID: "small", Kind: api.EventDrift}
	large := api.Event{ID: "large", Kind: api.EventTaskFailed, Message: strings.Repeat("x", 40<<10)}
	for _, e := range []api.Event{small, large, large} {
		if err := d.PublishEvent(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := d.out.read(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 * refusalStrikes {
		d.struck([]inFlight{{seq: 1, size: len(rs[0].payload)}})
	}
	if got, _ := d.sendable(rs[0]); !bytes.Equal(got, rs[0].payload) {
		t.Errorf("a small report was cut after losses: %s", got)
	}
	for i := range refusalStrikes {
		if got, _ := d.sendable(rs[1]); !bytes.Equal(got, rs[1].payload) {
			t.Fatalf("the large report was cut after %d losses", i)
		}
		d.struck([]inFlight{{seq: 1, size: len(rs[0].payload)}, {seq: 2, size: len(rs[1].payload)}})
	}
	got, err := d.sendable(rs[1])
	if err != nil {
		t.Fatal(err)
	}
	if r, err := ParseEventReport(got); err != nil || !r.Truncated || !strings.Contains(r.Message, "refused by the broker") {
		t.Errorf("after %d losses the large report went as %.300s (%v); want its marker", refusalStrikes, got, err)
	}
	if got, _ := d.sendable(rs[2]); bytes.Equal(got, rs[2].payload) {
		t.Error("a report as large as the refused one was sent whole")
	}
	d.cleared(3)
	if len(d.strikes) != 0 {
		t.Errorf("strikes left after the acknowledgement: %v", d.strikes)
	}
}

// A state report that cannot be encoded, or is over the limit even
// without its state, still goes out: cut, readable, within the limit.
func TestStateReportCut(t *testing.T) {
	d, err := NewDevice(DeviceOptions{Broker: "tcp://127.0.0.1:1", Topics: Topics{Fleet: "demo"}, Device: "pi-001",
		Store: testStore(t, t.TempDir()), MaxReport: minReport})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("\x01", 64<<10)
	for name, s := range map[string]api.Status{
		"fits":      {TargetVersion: 1, Phase: api.PhaseIdle, State: []byte(`{"a":1}`)},
		"big state": {TargetVersion: 2, Phase: api.PhaseIdle, State: []byte(`{"a":"` + strings.Repeat("x", 64<<10) + `"}`)},
		"bad time":  {TargetVersion: 3, Phase: api.PhaseFailed, Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), State: []byte(`{}`)},
		"bad state": {TargetVersion: 4, Phase: api.PhaseIdle, State: []byte(`{"a":`)},
		"long rest": {TargetVersion: 5, Phase: api.PhaseFailed, Error: long, Modules: map[string]string{"m": long, "n": long}},
	} {
		if err := d.PublishState(t.Context(), s); err != nil {
			t.Fatalf("%s: PublishState: %v", name, err)
		}
		d.stateMu.Lock()
		b := d.statePayload(d.pending)
		d.stateMu.Unlock()
		r, err := ParseStateReport(b)
		switch {
		case err != nil:
			t.Errorf("%s: %v", name, err)
		case len(b) > minReport:
			t.Errorf("%s: %d bytes, over %d", name, len(b), minReport)
		case r.TargetVersion != s.TargetVersion || r.Phase != s.Phase:
			t.Errorf("%s: sent %.300s; want target version and phase kept", name, b)
		case r.Truncated != (name != "fits"):
			t.Errorf("%s: truncated %v", name, r.Truncated)
		}
	}
}
