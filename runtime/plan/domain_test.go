package plan_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tern-iot/tern/runtime/plan"
	"github.com/tern-iot/tern/runtime/state"
	"github.com/tern-iot/tern/sdk/abi"
)

// A domain is a set of jobs written natively, as a module writes them in
// Wasm: tests of the planner need not build modules (the runtime's tests
// do that).
type domain struct {
	jobs  []*plan.Job
	impls map[string]impl

	mu    sync.Mutex
	ran   []string
	calls int
}

type impl struct {
	cond   func(cur, tgt any) bool // nil: always
	effect func(cur, tgt any) any  // nil: the target
	expand func(path string, cur, tgt any) []plan.Step
	run    func(path string) error
}

func (d *domain) add(t testing.TB, module, name, path string, op abi.Op, kind abi.Kind, im impl) *domain {
	t.Helper()
	spec := abi.JobSpec{Name: name, Path: path, Op: op, Kind: kind}
	if im.cond == nil {
		spec.Condition = abi.ConditionAlways
	}
	if im.effect == nil && kind != abi.KindMethod {
		spec.Effect = abi.EffectTarget
	}
	j, err := plan.NewJob(module, spec)
	if err != nil {
		t.Fatal(err)
	}
	d.jobs = append(d.jobs, j)
	if d.impls == nil {
		d.impls = map[string]impl{}
	}
	d.impls[j.Name()] = im
	return d
}

func (d *domain) action(t testing.TB, name, path string, op abi.Op, im impl) *domain {
	mod, job, _ := strings.Cut(name, ".")
	return d.add(t, mod, job, path, op, "", im)
}

func (d *domain) method(t testing.TB, name, path string, op abi.Op, im impl) *domain {
	mod, job, _ := strings.Cut(name, ".")
	return d.add(t, mod, job, path, op, abi.KindMethod, im)
}

func decode(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	v, err := state.Parse(raw)
	if err != nil {
		panic(err)
	}
	return v
}

func (d *domain) Try(_ context.Context, j *plan.Job, c abi.Call, _ plan.Reader) (plan.Result, error) {
	d.mu.Lock()
	d.calls++
	d.mu.Unlock()
	im := d.impls[j.Name()]
	cur, tgt := decode(c.Current), decode(c.Target)
	if im.cond != nil && !im.cond(cur, tgt) {
		return plan.Result{}, nil
	}
	if j.Spec.IsMethod() {
		return plan.Result{OK: true, Steps: im.expand(c.Path, cur, tgt)}, nil
	}
	if im.effect == nil {
		return plan.Result{OK: true, Effect: tgt}, nil
	}
	return plan.Result{OK: true, Effect: im.effect(cur, tgt)}, nil
}

func (d *domain) Run(_ context.Context, j *plan.Job, c abi.Call, _ plan.Reader) error {
	d.mu.Lock()
	d.ran = append(d.ran, j.Name()+" "+c.Path)
	d.mu.Unlock()
	if im := d.impls[j.Name()]; im.run != nil {
		return im.run(c.Path)
	}
	return nil
}

func num(v any) float64 { f, _ := v.(float64); return f }

func doc(t testing.TB, s string) any {
	t.Helper()
	v, err := state.Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func step(job, path string) plan.Step { return plan.Step{Job: job, Path: state.MustPointer(path)} }

// counters is Mahler's counter domain: plus_one counts a counter up.
func counters(t testing.TB, withMethods bool) *domain {
	d := &domain{}
	if withMethods {
		d.method(t, "counters.plus_two", "/counters/:name", abi.Update, impl{
			cond: func(cur, tgt any) bool { return num(tgt)-num(cur) > 1 },
			expand: func(path string, _, _ any) []plan.Step {
				return []plan.Step{step("plus_one", path), step("plus_one", path)}
			},
		})
	}
	d.action(t, "counters.plus_one", "/counters/:name", abi.Update, impl{
		cond:   func(cur, tgt any) bool { return num(cur) < num(tgt) },
		effect: func(cur, _ any) any { return num(cur) + 1 },
	})
	return d
}

// relays switch relays on GPIO lines; remove takes one out of service.
func relays(t testing.TB) *domain {
	d := &domain{}
	d.action(t, "relay.add", "/relays/:name", abi.Create, impl{})
	d.action(t, "relay.switch", "/relays/:name", abi.Update, impl{})
	d.action(t, "relay.remove", "/relays/:name", abi.Delete, impl{})
	return d
}

// thermostat: a room with a heater and a temperature sensor. The planner
// warms the room by switching the heater on and waiting; it cools it by
// switching the heater off and waiting.
func thermostat(t testing.TB) *domain {
	d := &domain{}
	room := func(v any) map[string]any { m, _ := v.(map[string]any); return m }
	// sensed: the room's temperature is known (a sensor reports it).
	sensed := func(cur any) bool { _, ok := room(cur)["temp"].(float64); return ok }
	d.method(t, "thermo.warm", "/room", abi.Update, impl{
		cond: func(cur, tgt any) bool {
			return sensed(cur) && num(room(cur)["temp"]) < num(room(tgt)["temp"])
		},
		expand: func(string, any, any) []plan.Step {
			on := step("heater", "/room/heater")
			on.Target = json.RawMessage("true")
			return []plan.Step{on, step("wait", "/room")}
		},
	})
	d.method(t, "thermo.cool", "/room", abi.Update, impl{
		cond: func(cur, tgt any) bool {
			return sensed(cur) && num(room(cur)["temp"]) > num(room(tgt)["temp"])
		},
		expand: func(string, any, any) []plan.Step {
			off := step("heater", "/room/heater")
			off.Target = json.RawMessage("false")
			return []plan.Step{off, step("wait", "/room")}
		},
	})
	d.action(t, "thermo.heater", "/room/heater", abi.Any, impl{})
	// wait lets the room reach the target temperature, which it can only
	// do in the direction the heater pushes it.
	d.action(t, "thermo.wait", "/room", abi.Update, impl{
		cond: func(cur, tgt any) bool {
			c, g := room(cur), room(tgt)
			if g["temp"] == nil || !sensed(cur) {
				return false
			}
			on, _ := c["heater"].(bool)
			return on == (num(c["temp"]) < num(g["temp"])) && num(c["temp"]) != num(g["temp"])
		},
		effect: func(cur, tgt any) any {
			c := state.Clone(cur).(map[string]any)
			c["temp"] = room(tgt)["temp"]
			return c
		},
	})
	return d
}

// shape renders a plan as Mahler's test utilities describe plans: seq(...)
// for tasks one after another, par(...) for branches that run at the same
// time, and each task as "job path". A DAG that is not series-parallel is
// rendered as dag(...) with its edges.
func shape(p *plan.Plan) string {
	ids := make([]int, len(p.Tasks))
	for i := range ids {
		ids[i] = i
	}
	reach := reachability(p)
	return shapeOf(p, ids, reach)
}

func reachability(p *plan.Plan) [][]bool {
	r := make([][]bool, len(p.Tasks))
	for i, t := range p.Tasks {
		r[i] = make([]bool, len(p.Tasks))
		for _, d := range t.Deps {
			r[i][d] = true
			for k := range r[d] {
				if r[d][k] {
					r[i][k] = true
				}
			}
		}
	}
	return r
}

func shapeOf(p *plan.Plan, ids []int, reach [][]bool) string {
	if len(ids) == 1 {
		t := p.Tasks[ids[0]]
		return t.Job.Spec.Name + " " + t.Path.String()
	}
	related := func(a, b int) bool { return reach[a][b] || reach[b][a] }
	// Split into groups with no order between them: parallel branches.
	var groups [][]int
	seen := map[int]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		g := []int{id}
		seen[id] = true
		for i := 0; i < len(g); i++ {
			for _, o := range ids {
				if !seen[o] && related(g[i], o) {
					seen[o] = true
					g = append(g, o)
				}
			}
		}
		slices.Sort(g)
		groups = append(groups, g)
	}
	if len(groups) > 1 {
		var parts []string
		for _, g := range groups {
			parts = append(parts, shapeOf(p, g, reach))
		}
		return "par(" + strings.Join(parts, ", ") + ")"
	}
	// One group: cut where every task before comes before every task after.
	var parts []string
	start := 0
	for cut := 1; cut <= len(ids); cut++ {
		if cut < len(ids) {
			ok := true
			for _, a := range ids[start:cut] {
				for _, b := range ids[cut:] {
					if !reach[b][a] {
						ok = false
					}
				}
			}
			if !ok {
				continue
			}
		}
		seg := ids[start:cut]
		if len(seg) == len(ids) {
			var edges []string
			for _, id := range ids {
				for _, d := range p.Tasks[id].Deps {
					edges = append(edges, fmt.Sprintf("%d->%d", d, id))
				}
			}
			return "dag(" + strings.Join(edges, " ") + ")"
		}
		parts = append(parts, shapeOf(p, seg, reach))
		start = cut
	}
	if len(parts) == 1 {
		return parts[0]
	}
	// Flatten nested sequences.
	var flat []string
	for _, s := range parts {
		if inner, ok := strings.CutPrefix(s, "seq("); ok {
			flat = append(flat, strings.TrimSuffix(inner, ")"))
		} else {
			flat = append(flat, s)
		}
	}
	return "seq(" + strings.Join(flat, ", ") + ")"
}

// simulate applies the plan's tasks in order to current as the executor
// would: each task's condition must hold in its turn, and its effect is
// what the evaluator says then. It returns the state reached.
func simulate(t testing.TB, p *plan.Plan, ev plan.Evaluator, current any) any {
	t.Helper()
	order := make([]int, len(p.Tasks))
	for i, task := range p.Tasks {
		order[i] = task.ID
	}
	s, err := replay(p, ev, current, order)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// replay applies the plan's tasks to current in order (by ID), each
// checked and applied with the evaluator's answers against the state
// reached, and returns the state it ends at.
func replay(p *plan.Plan, ev plan.Evaluator, current any, order []int) (any, error) {
	s := state.Clone(current)
	if s == nil {
		s = map[string]any{}
	}
	for _, id := range order {
		task := p.Tasks[id]
		cur, present := state.Get(s, task.Path)
		c := abi.Call{Job: task.Job.Spec.Name, Path: task.Path.String(), Params: task.Params, Target: task.Target}
		if present {
			c.Current = state.Canonical(cur)
		}
		r, err := ev.Try(context.Background(), task.Job, c, docReader{s})
		if err != nil || !r.OK {
			return s, fmt.Errorf("order %v: task %d (%s) does not apply in its turn, at %s (%v)", order, id, task, state.Canonical(s), err)
		}
		if !task.Job.Spec.IsMethod() && task.Job.Spec.Effect == abi.EffectTarget {
			r.Effect = decode(task.Target)
		}
		if s, err = state.Put(s, task.Path, r.Effect); err != nil {
			return s, fmt.Errorf("task %d %s: %w", task.ID, task, err)
		}
	}
	return s, nil
}

// docReader reads a document.
type docReader struct{ doc any }

func (r docReader) Get(p state.Pointer) (any, bool) { return state.Get(r.doc, p) }

// checkDAG verifies that tasks on overlapping paths are ordered.
func checkDAG(t testing.TB, p *plan.Plan) {
	t.Helper()
	reach := reachability(p)
	for i, a := range p.Tasks {
		for _, b := range p.Tasks[i+1:] {
			if state.Overlaps(a.Path, b.Path) && !reach[b.ID][a.ID] {
				t.Fatalf("tasks %d (%s) and %d (%s) overlap but may run at once", a.ID, a, b.ID, b)
			}
		}
	}
}

var errBoom = errors.New("boom")
