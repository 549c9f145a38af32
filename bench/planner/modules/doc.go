// Package modules holds the job modules of the planner benchmark
// (PROBLEMS.md), written with the tern SDK and built to Wasm like any
// module: the benchmark measures planning with jobs in the sandbox.
package modules
