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
// The machinery lives in runtime/internal: the planner and executor
// (internal/plan) and the wazero host (internal/wasmhost). Persistence goes
// through the small contract of runtime/store; the JSON state model is
// runtime/state.
package runtime
