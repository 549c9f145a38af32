package fleet

import (
	"errors"
	"fmt"
	"sync"
	"testing"
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
