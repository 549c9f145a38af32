package runtime_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/internal/testbound"
	"github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/runtime/api"
	"github.com/tern-iot/tern/runtime/internal/wasmtest"
	"github.com/tern-iot/tern/runtime/layer"
	"github.com/tern-iot/tern/runtime/store/backend"
)

// FactsModule is a hand-written module whose one sensor is a facts
// sensor at /info reporting the JSON object facts (tern_sense writes
// the result, status ok and the object as JSON text, into its memory),
// and whose job poke sets /evil/:name.
func FactsModule(t testing.TB, facts string) []byte {
	man := strings.Replace(wasmtest.Manifest, `"sensors":[{"name":"watch","path":"/evil_sensor","interval_ms":50}]`,
		`"sensors":[{"name":"info","path":"/info","interval_ms":50,"facts":true}]`, 1)
	const at = 8192
	out := append([]byte{0, 6}, binary.LittleEndian.AppendUint32(nil, uint32(len(facts)))...) // status ok, tag JSON, length
	out = append(out, facts...)
	var body strings.Builder
	for i, b := range out {
		fmt.Fprintf(&body, "(i32.store8 (i32.const %d) (i32.const %d)) ", at+i, b)
	}
	body.WriteString(wasmtest.Packed(at, len(out)))
	return wasmtest.Assemble(t, wasmtest.Module{Manifest: man, Sense: body.String()}.Text())
}

// An agent counts what it does (plans, tasks by job, module call times,
// the time it converged), keeps the plan it ran as a graph with each
// task's state, and reports the facts of its options and of a module's
// facts sensor: the options' win, bad ones are left out. What the Report
// hook adds rides along with every status but publishes none by itself.
func TestMetricsPlanGraphAndFacts(t *testing.T) {
	st, err := backend.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rep := &recorder{}
	reports := 0
	opts := runtime.Options{Store: st, CacheDir: sharedCache, Reporter: rep, Logger: testLogger(t), Heartbeat: time.Hour,
		Facts: layer.Facts{"site": {"mill"}, layer.FactDevice: {"pi-001"}, layer.FactGroup: {"north", "south"}},
		Modules: []runtime.ModuleSpec{{Name: "evil", Wasm: FactsModule(t,
			`{"site":"other","hw_rev":"C","sensors":3,"calibrated":true,"bad name":"x","device":"y","nested":{"a":1}}`)}},
		Report: func(s *runtime.Status) {
			reports++ // on the loop only
			s.Agent = &api.AgentInfo{Version: "test", OutboxDepth: reports}
		},
	}
	a, _ := runAgent(t, opts)
	if err := a.SetTarget(1, json.RawMessage(`{"evil":{"a":true,"b":true}}`)); err != nil {
		t.Fatal(err)
	}
	testbound.WaitFor(t, "convergence", func() bool { return a.Status().Converged })

	m := a.Metrics()
	if m.Plans["found"] != 1 || m.Plans["failed"] != 0 {
		t.Errorf("plans %v, want found 1", m.Plans)
	}
	if n := m.Tasks[runtime.TaskKey{Module: "evil", Job: "poke", Outcome: "done"}]; n != 2 || len(m.Tasks) != 1 {
		t.Errorf("tasks %v, want evil.poke done 2", m.Tasks)
	}
	if c := m.Calls["evil"]; c.Count < 4 || c.Sum <= 0 { // 2 tries, 2 runs, sensor reads
		t.Errorf("module call time of evil: %+v, want at least 4 calls", c)
	}
	if m.LastConverged.IsZero() || !m.Converged || m.TargetVersion != 1 {
		t.Errorf("last converged %v, converged %v, version %d", m.LastConverged, m.Converged, m.TargetVersion)
	}

	s := a.Status()
	if s.Plan == nil || s.Plan.TargetVersion != 1 || len(s.Plan.Tasks) != 2 || s.Plan.More != 0 {
		t.Fatalf("plan graph %+v, want the 2 tasks of target 1", s.Plan)
	}
	for _, task := range s.Plan.Tasks {
		if task.Module != "evil" || task.Job != "poke" || task.State != "done" || !strings.HasPrefix(task.Path, "/evil/") {
			t.Errorf("plan task %+v, want evil.poke on /evil/…, done", task)
		}
	}
	want := map[string]string{"site": "mill", "hw_rev": "C", "sensors": "3", "calibrated": "true"}
	testbound.WaitFor(t, "the module's facts", func() bool { return maps.Equal(a.Status().Facts, want) })

	// The last status published carries the hook's additions, and
	// sensing every 50 ms (module calls counted each time) publishes no
	// new one: the hook's fields are not what makes a status new.
	testbound.WaitFor(t, "a published status with the facts", func() bool {
		rep.mu.Lock()
		defer rep.mu.Unlock()
		last := rep.states[len(rep.states)-1]
		return maps.Equal(last.Facts, want) && last.Agent != nil && last.Agent.Version == "test"
	})
	rep.mu.Lock()
	published := len(rep.states)
	rep.mu.Unlock()
	steps := a.Steps()
	testbound.WaitFor(t, "20 more steps", func() bool { return a.Steps() > steps+20 })
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if len(rep.states) != published {
		t.Errorf("%d statuses published over 20 idle steps; want none", len(rep.states)-published)
	}
}

// The plan graph is bounded: past api.MaxPlanTasks tasks, More counts
// the rest.
func TestMetricsPlanGraphBounded(t *testing.T) {
	st, err := backend.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, _ := runAgent(t, runtime.Options{Store: st, CacheDir: sharedCache, Logger: testLogger(t),
		Modules: []runtime.ModuleSpec{{Name: "evil", Wasm: FactsModule(t, `{}`)}}})
	var target strings.Builder
	target.WriteString(`{"evil":{`)
	for i := range api.MaxPlanTasks + 6 {
		if i > 0 {
			target.WriteString(",")
		}
		fmt.Fprintf(&target, `"k%03d":true`, i)
	}
	target.WriteString(`}}`)
	if err := a.SetTarget(1, json.RawMessage(target.String())); err != nil {
		t.Fatal(err)
	}
	testbound.WaitFor(t, "convergence", func() bool { return a.Status().Converged })
	g := a.Status().Plan
	if len(g.Tasks) != api.MaxPlanTasks || g.More != 6 {
		t.Fatalf("plan graph of %d tasks, more %d; want %d and 6", len(g.Tasks), g.More, api.MaxPlanTasks)
	}
}
