// Package plan finds and runs plans: workflows of jobs that move the
// current state toward a target.
//
// Find is the first planner (actions only; methods come with the HTN
// planner). It walks the target in sorted order, and at every path that is
// not yet as the target wants it, tries the jobs whose pattern and operation
// match, in a fixed order: the first whose condition holds is chosen, and its
// effect is applied to the planner's copy of the state. Passes repeat until
// the copy satisfies the target, no pass makes progress, a state repeats, or
// a bound is hit. The same inputs always give the same plan.
//
// Tasks whose paths do not overlap are independent: the plan is a DAG whose
// edges join each task to the earlier tasks on overlapping paths, and Run
// executes it with bounded parallelism.
package plan
