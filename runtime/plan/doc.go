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
// # Partial plans
//
// With Options.Partial, a target that can be reached only in part gives a
// plan for the part that can, and Plan.Unreached says what is left out,
// each place with the same explanation a *NoPlanError gives
// (Plan.UnreachedError words it as an error, ErrPartial). It works in
// rounds; when the whole target can be reached it costs a look at the
// goal before the search and at the unmet leaves of each dead end:
//
//   - First, unmet leaves no job can ever change (no job's pattern binds
//     them, a parent of them or a place inside them) are dropped from the
//     target before any search: "no job binds this path or a parent of
//     it". Left in, each would cost a search that tries every combination
//     of the other parts before giving up.
//   - Then the search runs as usual, but stops at a dead end where a leaf
//     is hopeless: only its own jobs can change it (none binds a parent
//     or a child of it, and there are no methods, whose steps could name
//     it), no task changed it yet, and each of its jobs said no by its
//     condition or operation, reading nothing else. Every state the
//     search can reach asks those jobs the same question; backtracking
//     would try every combination of the other parts to learn nothing.
//     The hopeless leaves are dropped.
//   - If the search fails where it got furthest with unmet places, and
//     no bound was hit, those places are dropped from the target (a leaf
//     whose jobs bind at a parent, Stuck.At, is dropped alone: the
//     parent's other leaves stay). Either way the search runs again on
//     the rest, until it finds a plan. Every round drops at least one
//     place, and the bounds hold for all rounds together.
//   - A dropped place is left as it is: strict mode does not delete it,
//     and a later round refuses a task on it or inside it, so a method
//     whose expansion touches it fails and a job of the place itself is
//     chosen instead. A strict delete that cannot happen is dropped the
//     same way (its Stuck has target null).
//   - A bound hit (depth, tries, tasks, time) is still an error: the
//     search did not finish, so what it left unmet may be reachable. A
//     part that cannot be reached but is not hopeless as above (a job at
//     a parent could change it, a method is loaded, a job read other
//     paths) costs a full first search, as without Partial; with many
//     independent parts beside it, that search may hit a bound.
//   - When nothing can be reached the plan is empty and Unreached says
//     why, so a caller tells "nothing to do" from "nothing possible" by
//     Unreached, not by the error.
//
// Jobs of a place see the target without the dropped parts (a job bound
// at /room whose target was {"temp":21,"heater":true} sees
// {"heater":true} once /room/temp is dropped). The rounds are
// deterministic like the search, so the same inputs give the same partial
// plan and the same Unreached, sorted by path. A part reachable only
// along a path of the search abandoned while an unreachable part was unmet
// may be reported unreached with it; a later plan, from the state this one
// leads to, tries it again.
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
