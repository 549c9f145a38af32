package runtime

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/tern-iot/tern/internal/promtext"
	"github.com/tern-iot/tern/runtime/api"
)

// The agent counts what it does as it reports it: every count but the
// module call times is taken from the events the agent emits (event), so
// a count and the events an operator sees never disagree. Counting takes
// one mutex and allocates only for a key seen for the first time.

// Other is the key a metric's count goes under once its map holds
// api.MaxMetricsKeys keys: module and job names come from modules, and a
// device's metrics must stay bounded whatever they are called.
const Other = "other"

// CallBounds are the upper bounds, in seconds, of the module call time
// histogram: from a sensor's sub-millisecond read to a job's deadline.
var CallBounds = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10}

// TaskKey names a count of tasks: the job (its module and name) and how
// the task ended, "done" or "failed".
type TaskKey struct{ Module, Job, Outcome string }

// Metrics is a snapshot of the agent's counters since it started
// (Agent.Metrics). ternd renders it as the state report's summary, the
// node_exporter textfile and /metrics (docs/observability.md).
type Metrics struct {
	// Plans by outcome: found (a plan runs), partial (it leaves part of
	// the target out; found counts it too), failed (no plan).
	Plans map[string]uint64
	// Tasks by job and outcome.
	Tasks map[TaskKey]uint64
	// Calls is the time calls into each module took.
	Calls map[string]promtext.HistogramSnapshot
	// Rollbacks by module.
	Rollbacks map[string]uint64
	// Refusals by what was refused: target, module, job.
	Refusals map[string]uint64
	// LastConverged is when the agent last reached its target; zero if
	// it has not since it started.
	LastConverged time.Time
	Converged     bool
	TargetVersion uint64
}

type metrics struct {
	mu            sync.Mutex
	plans         map[string]uint64
	tasks         map[TaskKey]uint64
	calls         map[string]*promtext.Hist
	rollbacks     map[string]uint64
	refusals      map[string]uint64
	lastConverged time.Time
}

func newMetrics() *metrics {
	return &metrics{plans: map[string]uint64{}, tasks: map[TaskKey]uint64{}, calls: map[string]*promtext.Hist{},
		rollbacks: map[string]uint64{}, refusals: map[string]uint64{}}
}

// bounded returns key, or Other once m holds api.MaxMetricsKeys keys and
// key is not one of them.
func bounded[K comparable, V any](m map[K]V, key, other K) K {
	return boundedTo(m, key, other, api.MaxMetricsKeys-1)
}

// boundedTo is bounded with room for limit keys before Other.
func boundedTo[K comparable, V any](m map[K]V, key, other K, limit int) K {
	if _, ok := m[key]; ok || len(m) < limit {
		return key
	}
	return other
}

// count counts e, an event the agent emits, where it counts.
func (m *metrics) count(e Event, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch e.Kind {
	case EventPlanFound:
		m.plans["found"]++
	case EventPlanPartial:
		m.plans["partial"]++
	case EventPlanFailed:
		m.plans["failed"]++
	case EventTaskDone, EventTaskFailed:
		outcome := "done"
		if e.Kind == EventTaskFailed {
			outcome = "failed"
		}
		// Room for both outcomes' Other.
		k := boundedTo(m.tasks, TaskKey{e.Module, e.Job, outcome}, TaskKey{Other, Other, outcome}, api.MaxMetricsKeys-2)
		m.tasks[k]++
	case EventModuleRolledBack:
		m.rollbacks[bounded(m.rollbacks, e.Module, Other)]++
	case EventTargetRefused:
		m.refusals["target"]++
	case EventModuleRefused:
		m.refusals["module"]++
	case EventJobRefused:
		m.refusals["job"]++
	case EventConverged:
		m.lastConverged = now
	}
}

// call records a call into module that took d.
func (m *metrics) call(module string, d time.Duration) {
	m.mu.Lock()
	h := m.calls[module]
	if h == nil {
		module = bounded(m.calls, module, Other)
		if h = m.calls[module]; h == nil {
			h = promtext.NewHist(CallBounds...)
			m.calls[module] = h
		}
	}
	m.mu.Unlock()
	h.Observe(d.Seconds())
}

// Metrics returns the agent's counters now.
func (a *Agent) Metrics() Metrics {
	m := a.metrics
	m.mu.Lock()
	s := Metrics{Plans: clone(m.plans), Tasks: clone(m.tasks), Rollbacks: clone(m.rollbacks), Refusals: clone(m.refusals),
		LastConverged: m.lastConverged, Calls: make(map[string]promtext.HistogramSnapshot, len(m.calls))}
	hists := make(map[string]*promtext.Hist, len(m.calls))
	for k, h := range m.calls {
		hists[k] = h
	}
	m.mu.Unlock()
	for k, h := range hists {
		s.Calls[k] = h.Snapshot()
	}
	a.mu.Lock()
	s.Converged, s.TargetVersion = a.converged, a.version
	a.mu.Unlock()
	return s
}

func clone[K comparable, V any](m map[K]V) map[K]V {
	c := make(map[K]V, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// SortedTasks returns the task counts' keys in a stable order: by module,
// job, outcome.
func (s Metrics) SortedTasks() []TaskKey {
	keys := make([]TaskKey, 0, len(s.Tasks))
	for k := range s.Tasks {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b TaskKey) int {
		return cmp.Or(cmp.Compare(a.Module, b.Module), cmp.Compare(a.Job, b.Job), cmp.Compare(a.Outcome, b.Outcome))
	})
	return keys
}
