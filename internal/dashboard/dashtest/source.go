package dashtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/dashboard"
	"github.com/tern-iot/tern/runtime/api"
)

// Source is an in-memory dashboard.Source that a test changes: Set,
// Update and Remove change a device and tell every subscriber. Safe for
// concurrent use.
type Source struct {
	mu      sync.Mutex
	devices map[string]dashboard.Device
	events  []fleet.EventReport
	subs    map[*sub]struct{}
	// EventsErr, when set, is what Events returns.
	EventsErr error
}

var _ dashboard.Source = (*Source)(nil)

// subBuffer is how many ids a subscriber may fall behind by before it is
// told "" (reload everything).
const subBuffer = 64

type sub struct {
	ch       chan string
	overflow bool
}

// NewSource returns a Source holding devices.
func NewSource(devices ...dashboard.Device) *Source {
	s := &Source{devices: map[string]dashboard.Device{}, subs: map[*sub]struct{}{}}
	for _, d := range devices {
		s.devices[d.ID] = d
	}
	return s
}

// Set stores d and signals its id.
func (s *Source) Set(d dashboard.Device) {
	s.mu.Lock()
	s.devices[d.ID] = d
	s.mu.Unlock()
	s.Signal(d.ID)
}

// Update changes the device id with f and signals it; it reports whether
// the device was known. f gets a copy of the device and of its state
// report: give it new maps and plans rather than changing those it holds,
// which readers may be holding too.
func (s *Source) Update(id string, f func(*dashboard.Device)) bool {
	s.mu.Lock()
	d, ok := s.devices[id]
	if ok {
		if d.State != nil { // f changes a copy: readers hold the old one
			st := *d.State
			d.State = &st
		}
		f(&d)
		s.devices[id] = d
	}
	s.mu.Unlock()
	if ok {
		s.Signal(id)
	}
	return ok
}

// Remove forgets a device and signals its id.
func (s *Source) Remove(id string) {
	s.mu.Lock()
	delete(s.devices, id)
	s.mu.Unlock()
	s.Signal(id)
}

// AddEvents stores events and signals their devices.
func (s *Source) AddEvents(evs ...fleet.EventReport) {
	s.mu.Lock()
	s.events = append(s.events, evs...)
	s.mu.Unlock()
	for _, e := range evs {
		s.Signal(e.Device)
	}
}

// Signal tells every subscriber that id changed ("": everything). A
// subscriber whose buffer is full misses it and gets "" when it has room.
func (s *Source) Signal(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.subs {
		if c.overflow {
			select {
			case c.ch <- "":
				c.overflow = false
			default:
				continue
			}
		}
		select {
		case c.ch <- id:
		default:
			c.overflow = true
		}
	}
}

// Subscribers is how many Changes channels are open.
func (s *Source) Subscribers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs)
}

// Devices returns every device, sorted by id.
func (s *Source) Devices() []dashboard.Device {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]dashboard.Device, 0, len(s.devices))
	for _, d := range s.devices {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b dashboard.Device) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Device returns one device.
func (s *Source) Device(id string) (dashboard.Device, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[id]
	return d, ok
}

// Events returns the stored events that match q, in the order added.
func (s *Source) Events(ctx context.Context, q dashboard.EventQuery) ([]fleet.EventReport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.EventsErr != nil {
		return nil, s.EventsErr
	}
	var out []fleet.EventReport
	for _, e := range s.events {
		if (q.Device != "" && e.Device != q.Device) ||
			(!q.Since.IsZero() && e.Time.Before(q.Since)) ||
			(!q.Until.IsZero() && !e.Time.Before(q.Until)) ||
			(len(q.Kinds) > 0 && !slices.Contains(q.Kinds, string(e.Kind))) {
			continue
		}
		out = append(out, e)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, nil
}

// Changes sends the ids Signal is given until ctx is done, then closes.
func (s *Source) Changes(ctx context.Context) <-chan string {
	c := &sub{ch: make(chan string, subBuffer)}
	s.mu.Lock()
	s.subs[c] = struct{}{}
	s.mu.Unlock()
	go func() {
		<-ctx.Done()
		s.mu.Lock()
		delete(s.subs, c)
		close(c.ch)
		s.mu.Unlock()
	}()
	return c.ch
}

// FleetSize is how many devices Fleet makes.
const FleetSize = 12

// FleetCounts are the counts Fleet's devices make.
var FleetCounts = dashboard.Counts{Devices: 12, Online: 11, Converged: 8, Pending: 3, Failed: 1}

// Fleet returns a simulated fleet of FleetSize devices, pi-001 to pi-012,
// seen at about now:
//
//   - pi-001 … pi-008 converged, on target version 7;
//   - pi-009 and pi-010 pending: running the plan for version 8
//     (pi-009's plan half done);
//   - pi-011 failed, with an error;
//   - pi-012 offline and pending, last seen an hour ago.
//
// Devices whose number divides by 3 are in group south, the others in
// north; pi-001 to pi-004 are also in lab. pi-001 to pi-008 are arm64
// (Raspberry Pi 4), the rest armv7 (Raspberry Pi 3). Each runs the
// five-task plan of [Plan]. All report rollout relay-5 (module relay
// version 5) in two waves, and pi-001 to pi-006 the fleet job
// rotate-logs.
func Fleet(now time.Time) []dashboard.Device {
	var out []dashboard.Device
	for i := 1; i <= FleetSize; i++ {
		id := fmt.Sprintf("pi-%03d", i)
		group, site := "north", "north-field"
		if i%3 == 0 {
			group, site = "south", "south-field"
		}
		groups := []string{group}
		if i <= 4 {
			groups = append(groups, "lab")
		}
		arch, board := "arm64", "Raspberry Pi 4 Model B Rev 1.5"
		if i > 8 {
			arch, board = "armv7", "Raspberry Pi 3 Model B Plus Rev 1.3"
		}
		st := api.Status{
			Time: now.Add(-time.Duration(i) * time.Second), TargetVersion: 7, Converged: true, Phase: api.PhaseIdle,
			Modules: map[string]string{"relay": "5", "sht31": "2"},
			Agent: &api.AgentInfo{Version: "0.19.0", Arch: arch, Board: board, Kernel: "6.6.51-v8+", Started: now.Add(-48 * time.Hour),
				Store: "badger", DiskFree: 12_400_000_000, OutboxDepth: 0, RSS: 21_000_000},
			Facts: map[string]string{"arch": arch, "site": site, "greenhouse": fmt.Sprintf("gh-%d", (i+1)/2)},
			Plan:  Plan(7, "done", "done", "done", "done", "done"),
			Rollouts: map[string]api.RolloutStatus{"relay-5": {Wave: 1 + i%2, Phase: api.RolloutSucceeded, What: "module relay version 5",
				Since: now.Add(-time.Hour), Applied: now.Add(-time.Hour)}},
		}
		online, seen := true, now.Add(-time.Duration(i)*time.Second)
		switch {
		case i == 9 || i == 10:
			st.TargetVersion, st.Converged, st.Phase = 8, false, api.PhaseRunning
			st.Plan = Plan(8, "done", "done", "running", "pending", "pending")
			st.Rollouts["relay-5"] = api.RolloutStatus{Wave: 2, Phase: api.RolloutApplying, What: "module relay version 5", Since: now.Add(-time.Minute)}
		case i == 11:
			st.TargetVersion, st.Converged, st.Phase = 8, false, api.PhaseFailed
			st.Error = "task 3 valve.open /valves/north: i2c1:0x20: no device acknowledged the address"
			st.Plan = Plan(8, "done", "done", "failed", "done", "pending")
			st.Rollouts["relay-5"] = api.RolloutStatus{Wave: 2, Phase: api.RolloutFailed, What: "module relay version 5", Why: "rolled back", Since: now.Add(-2 * time.Minute)}
		case i == 12:
			online, seen = false, now.Add(-time.Hour)
			st.Time, st.TargetVersion, st.Converged, st.Phase = seen, 8, false, api.PhasePlanning
			st.Plan = Plan(8, "pending", "pending", "pending", "pending", "pending")
			st.Rollouts["relay-5"] = api.RolloutStatus{Wave: 1, Phase: api.RolloutWaiting, What: "module relay version 5", Since: now.Add(-time.Hour)}
		}
		d := dashboard.Device{ID: id, Online: online, Seen: seen,
			State: &fleet.StateReport{Format: fleet.ReportFormat, Device: id, Groups: groups, Status: st}}
		if i <= 6 {
			phase := "succeeded"
			if i > 4 {
				phase = "queued"
			}
			d.Jobs = map[string]api.JobStatus{"rotate-logs": {Time: now.Add(-time.Duration(i) * time.Minute), ID: "rotate-logs",
				Scope: "group/" + group + "/job/rotate-logs", Version: 1, Module: "logs", Command: "rotate", Phase: phase}}
		}
		out = append(out, d)
	}
	return out
}

// Plan is a five-task plan for target version v, its tasks in the given
// states (pending, running, done, failed):
//
//	1 relay.switch /relays/fan ─┬─> 3 valve.open /valves/north ──┐
//	2 relay.switch /relays/pump ┴─> 4 sht31.calibrate /sensors/t1 ┴─> 5 relay.pulse /relays/alarm
//
// Task 3 waits for 1; task 4 for 1 and 2; task 5 for 3 and 4: three
// columns, five edges (PlanEdges).
func Plan(v uint64, states ...string) *api.PlanGraph {
	tasks := []api.PlanTask{
		{ID: 1, Module: "relay", Job: "switch", Path: "/relays/fan"},
		{ID: 2, Module: "relay", Job: "switch", Path: "/relays/pump"},
		{ID: 3, Module: "valve", Job: "open", Path: "/valves/north", Deps: []int{1}},
		{ID: 4, Module: "sht31", Job: "calibrate", Path: "/sensors/t1", Deps: []int{1, 2}},
		{ID: 5, Module: "relay", Job: "pulse", Path: "/relays/alarm", Deps: []int{3, 4}},
	}
	for i := range tasks {
		tasks[i].State = "pending"
		if i < len(states) {
			tasks[i].State = states[i]
		}
	}
	return &api.PlanGraph{TargetVersion: v, Tasks: tasks}
}

// PlanEdges is how many dependencies Plan's tasks have.
const PlanEdges = 5

// Events returns a few events of device d, the newest at now.
func Events(d string, now time.Time) []fleet.EventReport {
	kinds := []struct {
		kind api.EventKind
		msg  string
	}{
		{api.EventTargetAccepted, ""}, {api.EventPlanFound, "5 tasks"}, {api.EventTaskStarted, ""},
		{api.EventTaskDone, ""}, {api.EventConverged, ""},
	}
	var out []fleet.EventReport
	for i, k := range kinds {
		out = append(out, fleet.EventReport{Format: fleet.ReportFormat, Device: d, Seq: uint64(i + 1),
			Event: api.Event{ID: fmt.Sprintf("%s-%d", d, i+1), Time: now.Add(time.Duration(i-len(kinds)) * time.Second),
				Kind: k.kind, TargetVersion: 7, Module: "relay", Job: "switch", Path: "/relays/fan", Message: k.msg}})
	}
	return out
}
