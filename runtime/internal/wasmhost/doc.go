// Package wasmhost runs job modules on wazero.
//
// A Host owns one wazero runtime (compiler where the platform has one,
// interpreter elsewhere), its on-disk compilation cache, and the "tern" host
// module whose functions give modules access to hardware. A Module is one
// compiled job module with a small pool of instances; each call borrows an
// instance, so calls into one module run in parallel up to the pool size.
//
// Every call carries a Phase in its context. Host functions read it: during
// PhasePlan (condition, effect) all hardware calls fail with
// abi.ErrnoPlanning; during PhaseRun and PhaseSense they succeed only for the
// resources granted to the module. An instance whose call trapped or ran past
// its deadline is closed and replaced by a fresh one on the next call.
package wasmhost
