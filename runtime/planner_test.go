package runtime_test

import (
	"context"
	"strings"
	"testing"

	"github.com/tern-iot/tern/internal/wasmbuild"
	"github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/runtime/plan"
	"github.com/tern-iot/tern/runtime/state"
)

// Planning with jobs in Wasm: methods expand inside the sandbox, the plan
// is the one the native planner tests expect, and answers that did not
// look at the path are asked once for every counter.
func TestPlannerWithWasmMethods(t *testing.T) {
	ctx := context.Background()
	pl := plannerOf(t, "github.com/tern-iot/tern/bench/planner/modules/methods")
	cur, _ := state.Parse([]byte(`{"counters":{"a":0,"b":0,"c":0}}`))
	tgt, _ := state.Parse([]byte(`{"counters":{"a":6,"b":6,"c":1}}`))
	p, err := pl.Find(ctx, cur, tgt, plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Tasks) != 13 {
		t.Fatalf("%d tasks, want 6+6+1:\n%s", len(p.Tasks), plan.Text(p))
	}
	if got := strings.Join(p.Tasks[0].Via, " > "); got != "bench-methods.plus_four /counters/a > bench-methods.plus_two /counters/a" {
		t.Fatalf("first task via %q", got)
	}
	if !strings.Contains(plan.Text(p), "3 parallel branches at most") {
		t.Fatalf("counters must be independent branches:\n%s", plan.Text(p))
	}
	// a and b have the same values: b's questions were answered by a's.
	if p.Stats.Calls >= p.Stats.Tries {
		t.Fatalf("stats %+v: path-free answers were not reused", p.Stats)
	}
	// An impossible target is explained from inside the sandbox too.
	_, err = pl.Find(ctx, cur, map[string]any{"counters": map[string]any{"a": -1.0}}, plan.Options{})
	if err == nil || !strings.Contains(err.Error(), "/counters/a: is 0, target -1") || !strings.Contains(err.Error(), "bench-methods.plus_one: condition does not hold") {
		t.Fatalf("err = %v", err)
	}
}

// plannerOf is a Planner with the Go module pkg, built for wasm, closed
// when the test ends.
func plannerOf(t *testing.T, pkg string) *runtime.Planner {
	t.Helper()
	ctx := context.Background()
	wasm, err := wasmbuild.Cached(pkg)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := runtime.NewPlanner(ctx, runtime.PlannerOptions{Modules: []runtime.ModuleSpec{{Wasm: wasm}}, CacheDir: sharedCache})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pl.Close(ctx) })
	return pl
}
