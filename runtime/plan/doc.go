// Package plan finds and runs plans: workflows of jobs that move the
// current state toward a target. It is an HTN planner in the manner of
// balena's Mahler.
//
// Jobs are bound to a path pattern ("/relays/:name") and an operation
// (create, update, delete, any). An action has a condition, an effect (the
// path's value after it) and a run; a method has a condition and an
// expansion into other jobs on concrete paths, which may be methods again
// (nesting is bounded). The planner never runs anything: it asks an
// Evaluator (the Wasm modules, with no hardware) whether a job applies and
// what it does, and answers itself for declarative jobs (condition always,
// effect "the target") so those cost no call into the sandbox.
//
// Find is a depth-first search. At each state it lists the parts of the
// target still unmet that some job binds, parents before children (in
// strict mode, then the keys to delete), and tries their jobs in a fixed
// order, methods before actions, by name. The first choice that applies is
// taken and the search goes on from the state it leads to; a choice that
// leads nowhere is undone and the next is tried. A state already visited
// is not explored again, which detects cycles and bounds the work. Depth,
// method nesting, jobs tried, plan size and time are bounded. The same
// inputs always give the same plan. When no plan exists the error is a
// *NoPlanError that says, where the search got furthest, which parts of the
// target were unmet and why each job tried there did not help.
//
// The search works on one copy of the state, changed in place with an undo
// log; the state's hash and the set of unmet places are kept up to date in
// what each step changes, so a step costs what it changes, not the size of
// the state.
//
// A job may read other parts of the state than its path, through the
// Reader the Evaluator is given; Find records every path a task's job read
// (Task.Reads), and remembers an answer only together with the values it
// read. The plan is a DAG: a task waits for every earlier task that
// changed what it changes or reads, and for every earlier task that read
// what it changes, so every order the DAG allows does what the sequence
// does. Run executes it with bounded parallelism, checking each task's
// condition again against the live state before running it. Mermaid, DOT
// and Text render a plan.
package plan
