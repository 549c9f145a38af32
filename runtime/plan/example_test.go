package plan_test

import (
	"fmt"

	"github.com/tern-iot/tern/runtime/plan"
	"github.com/tern-iot/tern/runtime/state"
	"github.com/tern-iot/tern/sdk/abi"
)

// A plan of two counters raised in parallel, then a reset that waits for
// both, as `tern plan` prints it and as Mermaid draws it.
func ExampleText() {
	plus, _ := plan.NewJob("counters", abi.JobSpec{Name: "plus_one", Path: "/counters/:name", Op: abi.Update})
	reset, _ := plan.NewJob("counters", abi.JobSpec{Name: "reset", Path: "/counters", Op: abi.Update})
	p := &plan.Plan{Tasks: []*plan.Task{
		{ID: 0, Job: plus, Op: abi.Update, Path: state.MustPointer("/counters/a")},
		{ID: 1, Job: plus, Op: abi.Update, Path: state.MustPointer("/counters/b")},
		{ID: 2, Job: reset, Op: abi.Update, Path: state.MustPointer("/counters"), Deps: []int{0, 1}},
	}}
	fmt.Print(plan.Text(p))
	fmt.Print(plan.Mermaid(p))
	// Output:
	// 3 tasks, 2 parallel branches at most
	//   0  counters.plus_one  update  /counters/a
	//   1  counters.plus_one  update  /counters/b
	//   2  counters.reset     update  /counters    after 0,1
	// flowchart TD
	//   start(("start"))
	//   finish(("end"))
	//   t0["counters.plus_one update /counters/a"]
	//   t1["counters.plus_one update /counters/b"]
	//   t2["counters.reset update /counters"]
	//   start --> t0
	//   start --> t1
	//   t0 --> t2
	//   t1 --> t2
	//   t2 --> finish
}
