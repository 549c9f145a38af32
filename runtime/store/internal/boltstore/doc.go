// Package boltstore is the store backend built on bbolt (go.etcd.io/bbolt),
// a single-file copy-on-write B+tree. It is the default backend on 32-bit
// machines, where Badger loses data (see package store).
//
// The whole store is one bucket in the file DIR/tern.db. Every Put and
// Delete is its own read-write transaction, and bbolt syncs the file
// (fdatasync) before the commit returns, so a write that returned survives
// a power cut. A crash during a commit leaves the previous version: bbolt
// never overwrites pages in use and switches meta pages last.
//
// Scan copies entries out of a read transaction in chunks and calls the
// callback with no transaction open. bbolt cannot remap its file while a
// read transaction is open, so a callback that writes (or waits on a
// goroutine that writes) inside a long read transaction could deadlock;
// chunking makes that impossible and lets the callback delete what it
// visits.
//
// The file is locked (flock) while open: a second Open of the same
// directory, from this process or another, fails after a short wait.
package boltstore
