// Package cli is the tern operator command: push targets, watch devices,
// build modules, run a development broker. cmd/tern is a thin main around
// Main. Exit codes: 0 success, 1 failure, 2 bad usage (a flag, an
// argument, a file named on the command line), 3 timed out, 4 tern status
// found devices not converged or not online.
//
// Every command is an entry of one table (commands, in commands.go): Main
// dispatches from it, tern --help lists it, each command's --help prints
// its entry, and the tests hold every entry to its help and to
// docs/cli.md. What the user typed is checked in one place (input.go):
// broker addresses, versions, files named on the command line.
package cli
