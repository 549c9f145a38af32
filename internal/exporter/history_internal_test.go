package exporter

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/dashboard"
	"github.com/tern-iot/tern/runtime/api"
)

func ev(device, epoch string, seq uint64, kind string, at time.Time) fleet.EventReport {
	return fleet.EventReport{Format: 1, Device: device, Epoch: epoch, Seq: seq,
		Event: api.Event{ID: fmt.Sprintf("%s-%d", device, seq), Time: at, Kind: api.EventKind(kind)}}
}

func names(rs []fleet.EventReport) []string {
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%s/%d", r.Device, r.Seq))
	}
	return out
}

// Copies are dropped, across a reopen too; a late event sorts just before
// the next of its device; queries filter and keep the newest.
func TestHistoryOrderAndDedup(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)
	h, err := openHistory(dir, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	add := func(r fleet.EventReport, want bool) {
		t.Helper()
		got, err := h.add(r, t0)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("add %s/%d: stored %v, want %v", r.Device, r.Seq, got, want)
		}
	}
	add(ev("a", "e1", 1, "task.done", t0), true)
	add(ev("b", "x", 1, "task.done", t0.Add(time.Second)), true)
	add(ev("a", "e1", 3, "converged", t0.Add(3*time.Second)), true)
	add(ev("b", "x", 2, "converged", t0.Add(4*time.Second)), true)
	add(ev("a", "e1", 2, "task.done", t0.Add(2*time.Second)), true)  // late
	add(ev("a", "e1", 3, "converged", t0), false)                    // copy
	add(ev("a", "e2", 1, "plan.found", t0.Add(5*time.Second)), true) // a new epoch numbers from 1
	add(ev("a", "", 0, "odd kind!", t0.Add(6*time.Second)), true)    // unnumbered: always stored
	h.close()

	h, err = openHistory(dir, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer h.close()
	add(ev("b", "x", 2, "converged", t0), false) // a copy after the restart

	all, more, err := h.query(dashboard.EventQuery{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a/1", "b/1", "a/2", "a/3", "b/2", "a/1", "a/0"}
	if !slices.Equal(names(all), want) || more {
		t.Errorf("all: %v (more %v), want %v", names(all), more, want)
	}
	got, _, _ := h.query(dashboard.EventQuery{Device: "a"})
	if want := []string{"a/1", "a/2", "a/3", "a/1", "a/0"}; !slices.Equal(names(got), want) {
		t.Errorf("device a: %v, want %v", names(got), want)
	}
	got, more, _ = h.query(dashboard.EventQuery{Limit: 2})
	if want := []string{"a/1", "a/0"}; !slices.Equal(names(got), want) || !more {
		t.Errorf("newest 2: %v (more %v), want %v", names(got), more, want)
	}
	got, _, _ = h.query(dashboard.EventQuery{Kinds: []string{"converged"}, Since: t0.Add(3 * time.Second), Until: t0.Add(3 * time.Second)})
	if want := []string{"a/3"}; !slices.Equal(names(got), want) {
		t.Errorf("converged at t0+3s: %v, want %v", names(got), want)
	}
	stored, kinds, _ := h.stats()
	if stored != 7 || kinds["task.done"] != 3 || kinds["converged"] != 2 || kinds[kindOther] != 1 {
		t.Errorf("stats: %d stored, kinds %v", stored, kinds)
	}
}

// Retention and MaxEvents remove the oldest; a copy of a removed event
// is not stored again.
func TestHistoryPrune(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)
	h, err := openHistory(t.TempDir(), time.Hour, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer h.close()
	for i := uint64(1); i <= 5; i++ {
		if _, err := h.add(ev("a", "e", i, "task.done", t0), t0.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	got, _, _ := h.query(dashboard.EventQuery{})
	if want := []string{"a/3", "a/4", "a/5"}; !slices.Equal(names(got), want) {
		t.Errorf("after 5 with MaxEvents 3: %v, want %v", names(got), want)
	}
	if ok, _ := h.add(ev("a", "e", 2, "task.done", t0), t0); ok {
		t.Error("a copy of a pruned event was stored again")
	}
	if n, err := h.prune(t0.Add(time.Hour + 4*time.Minute + time.Second)); err != nil || n != 2 {
		t.Errorf("prune: %d, %v; want 2 (received at +3m and +4m)", n, err)
	}
	got, _, _ = h.query(dashboard.EventQuery{})
	if want := []string{"a/5"}; !slices.Equal(names(got), want) {
		t.Errorf("after retention: %v, want %v", names(got), want)
	}
	if stored, _, _ := h.stats(); stored != 1 {
		t.Errorf("stored %d, want 1", stored)
	}
}

// A second exporter on the same data directory is told what is wrong.
func TestHistoryInUse(t *testing.T) {
	dir := t.TempDir()
	h, err := openHistory(dir, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer h.close()
	if _, err := openHistory(dir, 0, 0); err == nil {
		t.Fatal("opened twice")
	} else {
		t.Log(err)
	}
}
