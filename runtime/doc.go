// Package runtime is tern's agent core: it holds a target, senses the
// current state through job modules' sensors, plans a workflow of jobs that
// moves the state toward the target, runs it in the Wasm sandbox, persists
// what must survive a power cut, and reports its status and events.
//
// The loop (Agent.Run) is: sense → (if the state does not meet the target)
// plan → run → persist → report, and again on a new target, on drift (a
// sensor saw the state leave the target) and, with exponential backoff, after
// a failure. It needs no network: a target received once is stored and
// pursued across restarts, with or without a broker.
//
// The planner and executor are runtime/plan; the wazero host is
// runtime/internal/wasmhost. Persistence goes through the small contract of
// runtime/store (keys: the target, the last state, the plan in progress, the
// installed modules); the JSON state model is runtime/state. Planner plans
// offline with the same modules, for `tern plan` and the benchmark.
package runtime
