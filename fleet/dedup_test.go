package fleet_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/runtime/api"
)

func ev(device string, seq uint64) fleet.EventReport {
	return fleet.EventReport{Format: fleet.ReportFormat, Device: device, Seq: seq, Event: api.Event{ID: fmt.Sprintf("%s-%d", device, seq), Kind: api.EventTaskDone}}
}

func TestDedup(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []fleet.EventReport
		want []bool
	}{
		{"in order", []fleet.EventReport{ev("a", 1), ev("a", 2), ev("a", 3)}, []bool{true, true, true}},
		{"redelivered", []fleet.EventReport{ev("a", 1), ev("a", 2), ev("a", 2), ev("a", 1)}, []bool{true, true, false, false}},
		{"outbox replay after reconnect", []fleet.EventReport{ev("a", 1), ev("a", 2), ev("a", 3), ev("a", 2), ev("a", 3), ev("a", 4)}, []bool{true, true, true, false, false, true}},
		// The device restarts: numbering continues from its store; a gap
		// (events the consumer never saw) is no reason to drop what follows.
		{"restart continues numbering", []fleet.EventReport{ev("a", 5), ev("a", 6), ev("a", 9), ev("a", 10)}, []bool{true, true, true, true}},
		// A number below the first the consumer saw is older than its
		// joining: a copy of what it never wanted.
		{"before the first", []fleet.EventReport{ev("a", 7), ev("a", 3), ev("a", 8)}, []bool{true, false, true}},
		// A NATS broker redelivers an unacknowledged report after later
		// ones: it passes once, late.
		{"late redelivery", []fleet.EventReport{ev("a", 1), ev("a", 2), ev("a", 4), ev("a", 5), ev("a", 3), ev("a", 3), ev("a", 6), ev("a", 4)}, []bool{true, true, true, true, true, false, true, false}},
		// Too far behind the highest: taken for a copy.
		{"beyond the window", []fleet.EventReport{ev("a", 1), ev("a", 3), ev("a", 3000), ev("a", 2), ev("a", 2999), ev("a", 2999)}, []bool{true, true, true, false, true, false}},
		{"devices apart", []fleet.EventReport{ev("a", 5), ev("b", 1), ev("b", 5), ev("a", 5), ev("b", 2), ev("b", 2)}, []bool{true, true, true, false, true, false}},
		// Unnumbered reports always pass, and do not disturb the numbering.
		{"seq 0 kept", []fleet.EventReport{ev("a", 0), ev("a", 0), ev("a", 4), ev("a", 0), ev("a", 4)}, []bool{true, true, true, true, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d fleet.Dedup
			for i, e := range tc.in {
				if got := d.Fresh(e); got != tc.want[i] {
					t.Errorf("report %d (%s seq %d): Fresh = %v, want %v", i, e.Device, e.Seq, got, tc.want[i])
				}
			}
		})
	}
}

// A device whose store was wiped numbers from 1 again under a new epoch:
// its events pass from the first, and late copies of the old epoch's are
// still judged against the old epoch's numbers.
func TestDedupReinstalledDevice(t *testing.T) {
	var d fleet.Dedup
	old := func(seq uint64) fleet.EventReport { e := ev("a", seq); e.Epoch = "0ld"; return e }
	reflashed := func(seq uint64) fleet.EventReport { e := ev("a", seq); e.Epoch = "n3w"; return e }
	for i, tc := range []struct {
		e    fleet.EventReport
		want bool
	}{
		{old(8), true}, {old(9), true},
		{reflashed(1), true}, {reflashed(2), true},
		{old(9), false}, {old(10), true}, // a straggler of the old store
		{reflashed(2), false}, {reflashed(3), true},
	} {
		if got := d.Fresh(tc.e); got != tc.want {
			t.Errorf("report %d (epoch %s seq %d): Fresh = %v, want %v", i, tc.e.Epoch, tc.e.Seq, got, tc.want)
		}
	}
	if got := d.Last("a"); got != 3 {
		t.Errorf("Last = %d, want 3 (the latest epoch's)", got)
	}
}

// Hammer: many goroutines deliver overlapping copies of the same numbered
// events (as several QoS 1 redeliveries would); each number passes exactly
// once per device.
func TestDedupConcurrent(t *testing.T) {
	var d fleet.Dedup
	const devices, events, copies = 4, 200, 8
	var mu sync.Mutex
	passed := map[string]int{}
	var wg sync.WaitGroup
	for c := range copies {
		wg.Go(func() {
			for i := range events {
				for dev := range devices {
					e := ev(fmt.Sprintf("d%d", (dev+c)%devices), uint64(i+1))
					if d.Fresh(e) {
						mu.Lock()
						passed[e.ID]++
						mu.Unlock()
					}
				}
			}
		})
	}
	wg.Wait()
	for id, n := range passed {
		if n != 1 {
			t.Errorf("%s passed %d times", id, n)
		}
	}
	for dev := range devices {
		if got := d.Last(fmt.Sprintf("d%d", dev)); got != events {
			t.Errorf("d%d: Last = %d, want %d", dev, got, events)
		}
	}
}

// A consumer of event reports, delivered at least once, sees each event
// once and in order: copies and reports older than one it saw are
// dropped, and a reinstalled device (a new epoch) numbers from 1 again.
func ExampleDedup() {
	var seen fleet.Dedup
	for _, r := range []fleet.EventReport{
		{Device: "pi-1", Epoch: "a", Seq: 1},
		{Device: "pi-1", Epoch: "a", Seq: 2},
		{Device: "pi-1", Epoch: "a", Seq: 2}, // sent again after a reconnect
		{Device: "pi-1", Epoch: "a", Seq: 1}, // an old copy
		{Device: "pi-1", Epoch: "b", Seq: 1}, // the device was re-flashed
	} {
		fmt.Println(r.Epoch, r.Seq, seen.Fresh(r))
	}
	fmt.Println("last:", seen.Last("pi-1"))
	// Output:
	// a 1 true
	// a 2 true
	// a 2 false
	// a 1 false
	// b 1 true
	// last: 1
}
