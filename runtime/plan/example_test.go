package plan_test

import (
	"context"
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

// A partial plan: the relays can be switched, no job binds the porch
// light, so the plan switches the relays and says why the light is left
// out, in the words of "no plan".
func ExampleOptions_partial() {
	var jobs []*plan.Job
	for _, spec := range []abi.JobSpec{
		{Name: "add", Path: "/relays/:name", Op: abi.Create, Condition: abi.ConditionAlways, Effect: abi.EffectTarget},
		{Name: "switch", Path: "/relays/:name", Op: abi.Update, Condition: abi.ConditionAlways, Effect: abi.EffectTarget},
	} {
		j, _ := plan.NewJob("relay", spec)
		jobs = append(jobs, j)
	}
	current := map[string]any{"relays": map[string]any{"fan": false}}
	target := map[string]any{"relays": map[string]any{"fan": true, "heater": true}, "lights": map[string]any{"porch": true}}
	// Declarative jobs need no Evaluator: the planner answers for them.
	p, err := plan.Find(context.Background(), jobs, nil, current, target, plan.Options{Partial: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(plan.Text(p))
	fmt.Println(p.UnreachedError())
	// Output:
	// 2 tasks, 2 parallel branches at most
	//   0  relay.switch  update  /relays/fan
	//   1  relay.add     create  /relays/heater
	// plan: part of the target cannot be reached at 1 place; a partial plan leaves it out
	//   /lights/porch: is absent, target true: no job binds this path or a parent of it
}
