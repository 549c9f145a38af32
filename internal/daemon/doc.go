// Package daemon is ternd: it reads the device's configuration, opens the
// store, sets up the board's hardware, starts the agent and connects it to
// the fleet. cmd/ternd is a thin main around Run.
//
// It also makes the device observable (docs/observability.md): its
// inventory of itself (inventory.go), its metrics as one snapshot that
// the state report's summary, a node_exporter textfile and a loopback
// /metrics render (metrics.go), and journald-aware logs (logging.go).
package daemon
