package plan_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tern-iot/tern/runtime/plan"
	"github.com/tern-iot/tern/runtime/plan/plantest"
	"github.com/tern-iot/tern/runtime/state"
	"github.com/tern-iot/tern/sdk/abi"
)

// The plan's DAG is right when every order it allows, not only the plan's
// own sequence, reaches the target with the jobs' real conditions and
// effects. TestDAGEveryOrderReachesTarget checks that on random domains
// whose jobs read other parts of the state, the way a supervisor's "create
// container" reads whether its image is there: some must run after
// another slot reached its target, some only while another slot still
// has its first value, some look at the whole object of slots, some copy
// another slot. Methods expand into steps on other paths.
func TestDAGEveryOrderReachesTarget(t *testing.T) {
	domains, orders := 400, 40
	if testing.Short() {
		domains = 100
	}
	planned, withReads := 0, 0
	for seed := range uint64(domains) {
		d := newRandomDomain(seed)
		p, err := plan.Find(context.Background(), d.jobs, d, d.initial, d.target, plan.Options{})
		if errors.Is(err, plan.ErrNoPlan) {
			continue
		}
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		planned++
		for _, task := range p.Tasks {
			if len(task.Reads) > 0 {
				withReads++
				break
			}
		}
		// The executor itself, four tasks at a time, re-checking each
		// condition against the live state.
		lv := &liveState{s: state.Clone(d.initial)}
		if err := plan.Run(context.Background(), p, d, lv, plan.RunOptions{Parallel: 4}); err != nil || !state.Satisfies(lv.s, d.target) {
			t.Fatalf("seed %d: run: %v, reached %s\nplan:\n%s", seed, err, state.Canonical(lv.s), plan.Text(p))
		}
		rng := rand.New(rand.NewPCG(seed, 7))
		for i := range orders + 2 {
			var order []int
			switch i {
			case 0:
				order = plantest.Order(p, plantest.First) // the plan's own
			case 1:
				order = plantest.Order(p, plantest.Last)
			default:
				order = plantest.Order(p, plantest.Random(rng.IntN))
			}
			if err := d.replay(p, order); err != nil {
				t.Fatalf("seed %d: %v\ndomain:\n%s\nplan:\n%s", seed, err, d, plan.Text(p))
			}
		}
	}
	// The domains must give the property something to bite on.
	if planned < domains/3 || withReads < planned/2 {
		t.Fatalf("only %d of %d random domains had a plan, %d of them with tasks that read other paths", planned, domains, withReads)
	}
	t.Logf("%d of %d random domains planned (%d with cross-path reads), %d orders each", planned, domains, withReads, orders+2)
}

// randomDomain: slots /s/k0.. holding small integers, with a target for
// each; for each slot a few jobs whose conditions and effects read other
// slots.
type randomDomain struct {
	n               int
	initial, target any
	jobs            []*plan.Job
	rules           map[string]rule // by job name
}

// rule is one job's logic. Guards read other slots through the reader.
type rule struct {
	slot   int
	kind   string // "set" (to the target), "inc" (by one), "copy" (another slot's value), "method"
	from   int    // copy: the slot copied; method: the slot set first
	guards []guard
}

type guard struct {
	kind string // "after": slot at its target; "before": slot at its first value; "sum": all slots' sum at most bound
	slot int
	val  float64
}

func newRandomDomain(seed uint64) *randomDomain {
	rng := rand.New(rand.NewPCG(seed, 1))
	d := &randomDomain{n: 2 + rng.IntN(4), rules: map[string]rule{}}
	cur, tgt := map[string]any{}, map[string]any{}
	for i := range d.n {
		cur[slotKey(i)] = float64(rng.IntN(3))
		tgt[slotKey(i)] = float64(rng.IntN(4))
	}
	d.initial = map[string]any{"s": cur}
	d.target = map[string]any{"s": tgt}
	other := func(i int) int { return (i + 1 + rng.IntN(d.n-1)) % d.n }
	for i := range d.n {
		for k := range 1 + rng.IntN(3) {
			r := rule{slot: i, kind: []string{"set", "inc", "copy", "method"}[rng.IntN(4)], from: other(i)}
			for range rng.IntN(3) {
				g := guard{kind: []string{"after", "before", "sum"}[rng.IntN(3)], slot: other(i)}
				switch g.kind {
				case "after":
					g.val = tgt[slotKey(g.slot)].(float64)
				case "before":
					g.val = cur[slotKey(g.slot)].(float64)
				case "sum":
					g.val = float64(2*d.n + rng.IntN(d.n+1))
				}
				r.guards = append(r.guards, g)
			}
			name := fmt.Sprintf("%s%d_%d", r.kind, i, k)
			spec := abi.JobSpec{Name: name, Path: "/s/" + slotKey(i), Op: abi.Update}
			if r.kind == "method" {
				spec.Kind = abi.KindMethod
			}
			j, err := plan.NewJob("rand", spec)
			if err != nil {
				panic(err)
			}
			d.jobs = append(d.jobs, j)
			d.rules[name] = r
		}
	}
	return d
}

func slotKey(i int) string { return fmt.Sprintf("k%d", i) }

func (d *randomDomain) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "  initial %s target %s\n", state.Canonical(d.initial), state.Canonical(d.target))
	for _, j := range d.jobs {
		fmt.Fprintf(&b, "  %s: %+v\n", j.Spec.Name, d.rules[j.Spec.Name])
	}
	return b.String()
}

func slot(st plan.Reader, i int) (float64, bool) {
	v, ok := st.Get(state.Pointer{"s", slotKey(i)})
	f, isNum := v.(float64)
	return f, ok && isNum
}

func (d *randomDomain) Try(_ context.Context, j *plan.Job, c abi.Call, st plan.Reader) (plan.Result, error) {
	r := d.rules[j.Spec.Name]
	cur, tgt := num(decode(c.Current)), num(decode(c.Target))
	if cur == tgt {
		return plan.Result{}, nil
	}
	for _, g := range r.guards {
		switch g.kind {
		case "after", "before":
			if v, ok := slot(st, g.slot); !ok || v != g.val {
				return plan.Result{}, nil
			}
		case "sum":
			all, _ := st.Get(state.Pointer{"s"})
			sum := 0.0
			for _, v := range all.(map[string]any) {
				sum += num(v)
			}
			if sum > g.val {
				return plan.Result{}, nil
			}
		}
	}
	switch r.kind {
	case "set":
		return plan.Result{OK: true, Effect: tgt}, nil
	case "inc":
		if cur > tgt {
			return plan.Result{}, nil
		}
		return plan.Result{OK: true, Effect: cur + 1}, nil
	case "copy":
		v, ok := slot(st, r.from)
		if !ok || v == cur {
			return plan.Result{}, nil
		}
		return plan.Result{OK: true, Effect: v}, nil
	}
	// A method: set the other slot to its target first (by any of its
	// jobs that applies, named here as its first), then this one.
	first := ""
	for _, o := range d.jobs {
		if or := d.rules[o.Spec.Name]; or.slot == r.from && or.kind != "method" {
			first = o.Spec.Name
			break
		}
	}
	last := ""
	for _, o := range d.jobs {
		if or := d.rules[o.Spec.Name]; or.slot == r.slot && or.kind == "set" {
			last = o.Spec.Name
			break
		}
	}
	if first == "" || last == "" {
		return plan.Result{}, nil
	}
	return plan.Result{OK: true, Steps: []plan.Step{
		{Job: first, Path: state.Pointer{"s", slotKey(r.from)}},
		{Job: last, Here: true},
	}}, nil
}

// replay runs the plan's tasks in order from the initial state, each
// checked and applied with the job's real logic against the state reached,
// and checks the target is reached.
func (d *randomDomain) replay(p *plan.Plan, order []int) error {
	s, err := replay(p, d, d.initial, order)
	if err != nil {
		return err
	}
	if !state.Satisfies(s, d.target) {
		return fmt.Errorf("order %v ends at %s, not the target", order, state.Canonical(s))
	}
	return nil
}

func (d *randomDomain) Run(context.Context, *plan.Job, abi.Call, plan.Reader) error { return nil }
