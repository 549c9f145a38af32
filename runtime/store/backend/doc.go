// Package backend opens the agent's store (package store's contract) with
// the backend that suits the machine.
//
// Open chooses at compile time with build constraints: open_32.go is built
// for the 32-bit GOARCH values (386, arm, mips, mipsle) and open_64.go for
// every other, so a 32-bit binary does not link Badger at all. Default says
// which one was chosen. OpenNamed opens a named backend instead (a 64-bit
// agent may choose bbolt to save memory; a 32-bit one cannot choose Badger). A database written by one backend cannot be read by
// the other: moving a device between a 32-bit and a 64-bit OS starts it with
// an empty store, as a re-flashed device would.
package backend
