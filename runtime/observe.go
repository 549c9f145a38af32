package runtime

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/tern-iot/tern/runtime/api"
	"github.com/tern-iot/tern/runtime/layer"
	"github.com/tern-iot/tern/runtime/plan"
	"github.com/tern-iot/tern/runtime/state"
)

// What the state report says of the plan and of the device's facts
// (docs/observability.md).

// maxGraphPath bounds a task's path in the plan graph: a target may name
// a key of any length, and the graph goes into every state report.
const maxGraphPath = 256

// planGraph is p as the state report's graph, every task pending, at most
// api.MaxPlanTasks tasks (More counts the rest; the deps of the tasks kept
// name only tasks kept, as tasks depend on earlier ones).
func planGraph(version uint64, p *plan.Plan) *api.PlanGraph {
	g := &api.PlanGraph{TargetVersion: version, Tasks: make([]api.PlanTask, 0, min(len(p.Tasks), api.MaxPlanTasks))}
	for _, t := range p.Tasks {
		if len(g.Tasks) == api.MaxPlanTasks {
			g.More++
			continue
		}
		var deps []int
		for _, d := range t.Deps {
			if d < api.MaxPlanTasks {
				deps = append(deps, d)
			}
		}
		g.Tasks = append(g.Tasks, api.PlanTask{ID: t.ID, Module: t.Job.Module, Job: t.Job.Spec.Name,
			Path: clip(t.Path.String(), maxGraphPath), Deps: deps, State: "pending"})
	}
	return g
}

// setTaskState records a task's state in the plan graph g (the agent's,
// held under a.mu).
func (a *Agent) setTaskState(g *api.PlanGraph, id int, st string) {
	a.mu.Lock()
	if a.plan == g && id >= 0 && id < len(g.Tasks) && g.Tasks[id].ID == id {
		g.Tasks[id].State = st
	}
	a.mu.Unlock()
}

// copyPlan copies g for a status: the agent's own changes while tasks
// run. Call with a.mu held.
func copyPlan(g *api.PlanGraph) *api.PlanGraph {
	if g == nil {
		return nil
	}
	c := *g
	c.Tasks = slices.Clone(g.Tasks)
	return &c
}

// factNamesReserved are the facts every device has from its own fields
// (device, board, arch, group): neither ternd.yaml nor a module sets them.
var factNamesReserved = []string{layer.FactDevice, layer.FactBoard, layer.FactArch, layer.FactGroup}

// configuredFacts are the facts the device was given (ternd.yaml's, in
// Options.Facts), without those of its own fields.
func configuredFacts(f layer.Facts) map[string]string {
	out := map[string]string{}
	for k, vs := range f {
		if slices.Contains(factNamesReserved, k) || len(vs) == 0 {
			continue
		}
		out[k] = vs[0]
	}
	return out
}

// updateFacts reads the facts sensors' values in the sensed state
// (sdk.FactsSensor): each a JSON object whose members are facts, strings,
// numbers or booleans. A fact ternd.yaml sets wins over a module's; a bad
// name or value, or one over api.MaxFacts, is left out, and said once at
// Warn until the module's facts change. It runs on the loop, which owns
// the module set.
func (a *Agent) updateFacts() {
	a.mu.Lock()
	defer a.mu.Unlock()
	facts := configuredFacts(a.opts.Facts)
	if len(facts) > api.MaxFacts {
		// ternd.yaml's own are checked at start; this keeps the bound
		// whoever builds the options.
		for _, k := range slices.Sorted(maps.Keys(facts))[api.MaxFacts:] {
			delete(facts, k)
		}
	}
	for _, m := range a.set.mods {
		var left []string
		for _, s := range m.sensors {
			if !s.spec.Facts {
				continue
			}
			v, _ := state.Get(a.current, s.path)
			obj, ok := v.(map[string]any)
			if !ok {
				if v != nil {
					left = append(left, fmt.Sprintf("%s: not an object", s.spec.Path))
				}
				continue
			}
			for _, k := range slices.Sorted(maps.Keys(obj)) {
				val, ok := factText(obj[k])
				switch _, set := facts[k]; {
				case set:
					continue // ternd.yaml's, or an earlier module's
				case !ok:
					left = append(left, fmt.Sprintf("%s: not a string, number or boolean", k))
				case slices.Contains(factNamesReserved, k):
					left = append(left, fmt.Sprintf("%s: a fact ternd knows itself", k))
				case layer.CheckFact(k, val) != nil:
					left = append(left, layer.CheckFact(k, val).Error())
				case len(facts) >= api.MaxFacts:
					left = append(left, fmt.Sprintf("%s: over the %d facts a device reports", k, api.MaxFacts))
				default:
					facts[k] = val
				}
			}
		}
		if told := fmt.Sprint(left); len(left) > 0 && a.factsTold[m.name] != told {
			a.log.Warn("facts of a module left out", "module", m.name, "why", left)
			a.factsTold[m.name] = told
		} else if len(left) == 0 {
			delete(a.factsTold, m.name)
		}
	}
	if len(facts) == 0 {
		facts = nil
	}
	a.status.Facts = facts
}

// factText is a fact's value as text, if it is a string, number or
// boolean.
func factText(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case bool:
		return strconv.FormatBool(v), true
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), true
	case json.Number:
		return v.String(), true
	}
	return "", false
}
