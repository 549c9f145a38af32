package main

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/tern-iot/tern/runtime/plan"
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
			b, err := ts.batch(ctx, p, pol)
			if err != nil {
				t.Fatal(err)
			}
			if b.Actions != p.actions || len(b.MS) != 1 || b.Warm != 1 {
				t.Fatalf("batch %+v", b)
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
}

// bench.mjs answers batches over its pipes and plans the supervisor as
// tern does. Skipped without Node and Mahler (run.sh installs it).
func TestMahler(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("no node")
	}
	if _, err := os.Stat("mahler/node_modules/mahler"); err != nil {
		t.Skip("Mahler is not installed: run bench/planner/run.sh once")
	}
	m, err := startMahler("mahler")
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	pol := policy{Problem: "supervisor", MinRuns: 2, MaxRuns: 2, SlowMS: 10_000}
	for range 2 { // the second batch reuses the built planner
		b, err := m.batch(pol)
		if err != nil {
			t.Fatal(err)
		}
		if b.Error != "" || b.Actions != problemNamed(t, "supervisor").actions || len(b.MS) != 2 || b.Warm != 1 {
			t.Fatalf("batch %+v", b)
		}
	}
	if b, err := m.batch(policy{Problem: "nope"}); err != nil || !strings.Contains(b.Error, "unknown problem") {
		t.Fatalf("unknown problem: %+v, %v", b, err)
	}
}

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
