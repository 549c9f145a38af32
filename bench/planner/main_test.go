package main

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/tern-iot/tern/runtime/plan"
	"github.com/tern-iot/tern/runtime/plan/plantest"
	"github.com/tern-iot/tern/runtime/state"
	"github.com/tern-iot/tern/sdk/abi"
)

// Every problem plans, with its module in Wasm, to the number of actions
// PROBLEMS.md gives (batch fails otherwise); the supervisor's plan has the
// actions PROBLEMS.md counts, and its DAG orders them by what
// create_container reads.
func TestProblems(t *testing.T) {
	ctx := context.Background()
	ts := newTernSide()
	defer ts.close(ctx)
	pol := policy{MinRuns: 1, MaxRuns: 1, SlowMS: 10_000}
	for _, p := range problems() {
		t.Run(p.name, func(t *testing.T) {
			b, err := ts.batch(ctx, p, pol, false)
			if err != nil {
				t.Fatal(err)
			}
			if b.Actions != p.wholeActions() || len(b.MS) != 1 || b.Warm != 1 {
				t.Fatalf("batch %+v", b)
			}
			// With partial plans, the same plan where the whole target
			// can be reached, and the rest of it where it cannot.
			if b, err = ts.batch(ctx, p, pol, true); err != nil {
				t.Fatal(err)
			}
			if b.Actions != p.actions || len(b.MS) != 1 {
				t.Fatalf("partial batch %+v", b)
			}
		})
	}
	p := problemNamed(t, "supervisor")
	last, err := ts.planners[p.name].Find(ctx, p.current, p.target, plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, task := range last.Tasks {
		count[task.Job.Spec.Name]++
	}
	want := map[string]int{"create_app": 3, "pull": 17, "create_container": 17, "start_container": 17, "stop_container": 7, "remove_container": 7, "remove_app": 1}
	for job, n := range want {
		if count[job] != n {
			t.Errorf("%s: %d tasks, want %d", job, count[job], n)
		}
	}
	// Each create_container waits for the pull of its image, which it read.
	pulled := map[string]int{} // image path -> task ID
	for _, task := range last.Tasks {
		switch task.Job.Spec.Name {
		case "pull":
			pulled[task.Path.String()] = task.ID
		case "create_container":
			if len(task.Reads) != 1 {
				t.Fatalf("%v read %v, want its image", task, task.Reads)
			}
			id, ok := pulled[task.Reads[0].String()]
			if !ok || !slices.Contains(task.Deps, id) {
				t.Errorf("%v (deps %v) must wait for the pull of %s (task %d)", task, task.Deps, task.Reads[0], id)
			}
		}
	}

	// Every order the DAG allows reaches the target, each task checked and
	// applied with the module's own answers in its turn.
	rng := rand.New(rand.NewPCG(14, 69))
	ev := ts.planners[p.name].Evaluator()
	for i := range 30 {
		s := state.Clone(any(p.current))
		pick := plantest.Random(rng.IntN)
		if i == 0 {
			pick = plantest.Last
		}
		for _, id := range plantest.Order(last, pick) {
			task := last.Tasks[id]
			cur, present := state.Get(s, task.Path)
			c := abi.Call{Job: task.Job.Spec.Name, Path: task.Path.String(), Params: task.Params, Target: task.Target}
			if present {
				c.Current = state.Canonical(cur)
			}
			r, err := ev.Try(ctx, task.Job, c, reader{s})
			if err != nil || !r.OK {
				t.Fatalf("order %d: %v does not apply in its turn (%v)", i, task, err)
			}
			if s, err = state.Put(s, task.Path, r.Effect); err != nil {
				t.Fatal(err)
			}
		}
		if !state.Satisfies(s, p.target) {
			t.Fatalf("order %d ends at %s", i, state.Canonical(s))
		}
	}
}

type reader struct{ doc any }

func (r reader) Get(p state.Pointer) (any, bool) { return state.Get(r.doc, p) }

func problemNamed(tb testing.TB, name string) problem {
	for _, p := range problems() {
		if p.name == name {
			return p
		}
	}
	tb.Fatalf("no problem %s", name)
	return problem{}
}

// BenchmarkTern is tern's side of each problem alone, for profiling:
//
//	go test -run '^$' -bench Tern/supervisor -cpu 1 -cpuprofile cpu.out ./bench/planner
func BenchmarkTern(b *testing.B) {
	ctx := context.Background()
	ts := newTernSide()
	defer ts.close(ctx)
	for _, p := range problems() {
		b.Run(p.name, func(b *testing.B) {
			pl, err := ts.planner(ctx, p)
			if err != nil {
				b.Fatal(err)
			}
			var last *plan.Plan
			for b.Loop() {
				if last, err = pl.Find(ctx, p.current, p.target, plan.Options{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(last.Stats.Calls), "calls/op")
		})
	}
}
