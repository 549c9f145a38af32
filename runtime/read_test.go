package runtime_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/tern-iot/tern/runtime/plan"
	"github.com/tern-iot/tern/runtime/state"
)

// A job in Wasm reads other parts of the state while it is planned: what
// it reads decides its answer, is recorded on its task for the DAG, may be
// larger than the module's first read buffer, and a malformed pointer is
// the module's error, explained.
func TestModuleReadsState(t *testing.T) {
	ctx := context.Background()
	pl := plannerOf(t, "github.com/tern-iot/tern/runtime/internal/wasmtest/readstate")
	big := map[string]any{}
	for i := range 2000 { // about 30 KB on the wire: past the first buffer
		big[fmt.Sprintf("key%04d", i)] = fmt.Sprintf("value %d", i)
	}
	cur := map[string]any{"src": map[string]any{"a": big, "b": 1.0}}
	tgt := map[string]any{"dst": map[string]any{"a": big, "b": 1.0}}
	p, err := pl.Find(ctx, cur, tgt, plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Tasks) != 2 {
		t.Fatalf("want two copies:\n%s", plan.Text(p))
	}
	for _, task := range p.Tasks {
		want := "/src/" + task.Path[1]
		if len(task.Reads) != 1 || task.Reads[0].String() != want {
			t.Fatalf("%s read %v, want [%s]", task, task.Reads, want)
		}
		if src, _ := state.Get(cur, state.MustPointer(want)); !state.Equal(task.Effect, src) {
			t.Fatalf("%s: effect %v", task, task.Effect)
		}
	}
	// With no source the copy does not apply, and the planner says why.
	_, err = pl.Find(ctx, map[string]any{}, map[string]any{"dst": map[string]any{"z": 1.0}}, plan.Options{})
	if err == nil || !strings.Contains(err.Error(), "readstate.copy: condition does not hold") {
		t.Fatalf("err = %v", err)
	}
	// A malformed pointer is refused by the host, and reported.
	_, err = pl.Find(ctx, map[string]any{}, map[string]any{"bad": map[string]any{"x": 1.0}}, plan.Options{})
	if err == nil || !strings.Contains(err.Error(), "reading no-leading-slash: sdk: bad argument") {
		t.Fatalf("err = %v", err)
	}
}
