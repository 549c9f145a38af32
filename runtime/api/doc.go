// Package api holds the types that cross the agent's boundaries: what the
// agent reports of itself ([Status], [Phase]) and of its work ([Event],
// [EventKind]). The fleet contract (package fleet) carries them, the agent
// (package runtime) makes them, and tools that speak the contract (an
// exporter, a dashboard, a device of a third party) read them, without
// linking the agent: it imports nothing of tern, as wazero's api package
// imports nothing of wazero.
//
// Package runtime names the same types (runtime.Status is api.Status).
package api
