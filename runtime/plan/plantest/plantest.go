// Package plantest helps tests of plans: orders of a plan's tasks that its
// DAG allows, to check that every one of them, not only the plan's own
// sequence, does what the plan says.
package plantest

import (
	"slices"

	"github.com/tern-iot/tern/runtime/plan"
)

// Order lists p's tasks (by ID) in an order its DAG allows, pick choosing
// which of the ready tasks (in plan order, never empty) goes next.
func Order(p *plan.Plan, pick func(ready []int) int) []int {
	waiting := make([]int, len(p.Tasks))
	after := make([][]int, len(p.Tasks))
	var ready, order []int
	for _, t := range p.Tasks {
		waiting[t.ID] = len(t.Deps)
		for _, d := range t.Deps {
			after[d] = append(after[d], t.ID)
		}
		if len(t.Deps) == 0 {
			ready = append(ready, t.ID)
		}
	}
	for len(ready) > 0 {
		i := pick(ready)
		id := ready[i]
		ready = slices.Delete(ready, i, i+1)
		order = append(order, id)
		for _, n := range after[id] {
			if waiting[n]--; waiting[n] == 0 {
				j, _ := slices.BinarySearch(ready, n)
				ready = slices.Insert(ready, j, n)
			}
		}
	}
	return order
}

// First, Last and Random are picks for Order: the plan's own sequence, the
// latest ready task first, and a random one.
func First(ready []int) int { return 0 }

// Last: see First.
func Last(ready []int) int { return len(ready) - 1 }

// Random: see First.
func Random(intn func(n int) int) func(ready []int) int {
	return func(ready []int) int { return intn(len(ready)) }
}
