package runtime

import (
	"fmt"
	"testing"
	"time"

	"github.com/tern-iot/tern/runtime/api"
)

// Module and job names come from modules: every map of the counters
// stays within api.MaxMetricsKeys keys, the rest counted under Other.
func TestMetricsBounded(t *testing.T) {
	m := newMetrics()
	now := time.Now()
	for i := range 3 * api.MaxMetricsKeys {
		mod := fmt.Sprintf("m%d", i)
		m.count(Event{Kind: EventTaskDone, Module: mod, Job: "j"}, now)
		m.count(Event{Kind: EventTaskFailed, Module: mod, Job: "j"}, now)
		m.count(Event{Kind: EventModuleRolledBack, Module: mod}, now)
		m.call(mod, time.Millisecond)
	}
	if len(m.tasks) > api.MaxMetricsKeys || len(m.rollbacks) > api.MaxMetricsKeys || len(m.calls) > api.MaxMetricsKeys {
		t.Fatalf("%d task keys, %d rollback keys, %d call keys; want at most %d each", len(m.tasks), len(m.rollbacks), len(m.calls), api.MaxMetricsKeys)
	}
	var tasks, rollbacks, calls uint64
	for _, n := range m.tasks {
		tasks += n
	}
	for _, n := range m.rollbacks {
		rollbacks += n
	}
	for _, h := range m.calls {
		calls += h.Snapshot().Count
	}
	if want := uint64(3 * api.MaxMetricsKeys); tasks != 2*want || rollbacks != want || calls != want {
		t.Fatalf("counted %d tasks, %d rollbacks, %d calls; want %d, %d, %d: none lost", tasks, rollbacks, calls, 2*want, want, want)
	}
	if m.tasks[TaskKey{Other, Other, "failed"}] == 0 || m.rollbacks[Other] == 0 || m.calls[Other] == nil {
		t.Fatal("nothing counted under other")
	}
}

// Counting a module call allocates nothing once its module was seen.
func TestMetricsCallAllocates(t *testing.T) {
	m := newMetrics()
	m.call("relay", time.Millisecond)
	if n := testing.AllocsPerRun(100, func() { m.call("relay", time.Millisecond) }); n != 0 {
		t.Fatalf("%v allocations a call; want 0", n)
	}
}
