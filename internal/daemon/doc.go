// Package daemon is ternd: it reads the device's configuration, opens the
// store, sets up the board's hardware, starts the agent and connects it to
// the fleet. cmd/ternd is a thin main around Run.
package daemon
