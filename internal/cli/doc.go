// Package cli is the tern operator command: push targets, watch devices,
// build modules, run a development broker. cmd/tern is a thin main around
// Main. Exit codes: 0 success, 1 failure, 2 bad usage, 3 timed out.
package cli
