package fleet

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/runtime/api"
)

// fullStatus is a status with every observability field at its bounds:
// api.MaxFacts facts of api.MaxFactText bytes, a plan of api.MaxPlanTasks
// tasks, api.MaxMetricsKeys keys in the metrics' maps, and a state of
// stateBytes.
func fullStatus(stateBytes int) api.Status {
	s := api.Status{Time: time.Now().UTC(), TargetVersion: 7, Phase: api.PhaseIdle, Converged: true,
		State: json.RawMessage(fmt.Sprintf(`{"log":%q}`, strings.Repeat("s", stateBytes))),
		Agent: &api.AgentInfo{Version: "ternd v1.2.3", Arch: "armv6", Board: "Raspberry Pi Zero W Rev 1.1", Kernel: "6.6.31+rpt-rpi-v6", Started: time.Now(), Store: "bolt", DiskFree: 1 << 30, OutboxDepth: 3, RSS: 20 << 20},
		Facts: map[string]string{}, Plan: &api.PlanGraph{TargetVersion: 7},
		Metrics: &api.MetricsSummary{Plans: map[string]uint64{"found": 1}, Tasks: map[string]uint64{}, Calls: map[string]api.CallStats{}},
		Error:   strings.Repeat("e", 4<<10),
	}
	for i := range 16 {
		s.Unhandled = append(s.Unhandled, fmt.Sprintf("/unhandled/%02d/", i)+strings.Repeat("u", 200))
	}
	for i := range api.MaxFacts {
		s.Facts[fmt.Sprintf("f%03d", i)+strings.Repeat("k", 60)] = strings.Repeat("v", api.MaxFactText)
	}
	for i := range api.MaxPlanTasks {
		s.Plan.Tasks = append(s.Plan.Tasks, api.PlanTask{ID: i, Module: "relay", Job: "switch", Path: "/relays/" + strings.Repeat("p", 250), State: "done"})
	}
	for i := range api.MaxMetricsKeys {
		s.Metrics.Tasks[fmt.Sprintf("module%02d.job%02d done", i, i)] = uint64(i)
		s.Metrics.Calls[fmt.Sprintf("module%02d", i)] = api.CallStats{Count: 12345678, Sum: 1234.5678, Max: 0.25}
	}
	return s
}

// A state report over the limit goes without its state first, then
// without its plan graph, then without its metrics summary, then with
// only its short fields, the inventory and facts among them, and last
// without the facts; each step only when the one before does not fit.
// Whatever the limit (down to the least a device may set), the report
// fits it.
func TestCutStateOrder(t *testing.T) {
	d := newTestDevice(t)
	s := fullStatus(30 << 10)
	size := func(s api.Status) int {
		b, err := json.Marshal(StateReport{Format: ReportFormat, Device: "pi-001", Status: s})
		if err != nil {
			t.Fatal(err)
		}
		return len(b)
	}
	noState := s
	noState.State, noState.Truncated = nil, true
	noPlan := noState
	noPlan.Plan = nil
	noMetrics := noPlan
	noMetrics.Metrics = nil
	for _, tc := range []struct {
		name  string
		limit int
		want  func(api.Status) bool
	}{
		{"without the state", size(noState), func(r api.Status) bool { return r.Plan != nil && r.Metrics != nil }},
		{"without the plan", size(noPlan), func(r api.Status) bool { return r.Plan == nil && r.Metrics != nil && len(r.Facts) == api.MaxFacts }},
		{"without the metrics", size(noMetrics), func(r api.Status) bool {
			return r.Plan == nil && r.Metrics == nil && len(r.Facts) == api.MaxFacts && r.Agent != nil
		}},
		{"short, with the facts", size(noMetrics) - 1, func(r api.Status) bool {
			return r.Metrics == nil && len(r.Facts) == api.MaxFacts && r.Agent != nil && r.Agent.Board == s.Agent.Board
		}},
		// The largest legal facts fit the smallest limit a device may
		// set (api.MaxFacts of api.MaxFactText): they stay.
		{"short, at the smallest limit", minReport, func(r api.Status) bool {
			return r.Metrics == nil && len(r.Facts) == api.MaxFacts && r.Agent != nil && r.TargetVersion == 7 && r.Converged
		}},
		// Below it (no device gets there; the mechanism still holds),
		// the facts go last.
		{"short, without the facts", minReport / 3, func(r api.Status) bool {
			return r.Facts == nil && r.Agent != nil && r.Agent.Arch == "armv6" && r.TargetVersion == 7 && r.Converged
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := d.cutState(s, tc.limit)
			if len(b) > tc.limit {
				t.Fatalf("cut report is %d bytes, over the %d-byte limit", len(b), tc.limit)
			}
			var r StateReport
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			if !r.Truncated || r.State != nil && string(r.State) != "null" {
				t.Fatalf("cut report not truncated, or with its state: %s", b[:min(len(b), 300)])
			}
			if !tc.want(r.Status) {
				t.Fatalf("cut report (%d bytes, limit %d) kept: plan %v, metrics %v, %d facts, agent %v", len(b), tc.limit, r.Plan != nil, r.Metrics != nil, len(r.Facts), r.Agent)
			}
		})
	}
}
