// Package badgerstore is the store backend built on Badger v4
// (github.com/dgraph-io/badger/v4), an LSM tree with a value log. It is the
// default backend on 64-bit machines.
//
// Each Put and Delete is one Badger transaction. With SyncWrites (the
// default) Badger syncs its write-ahead log before the commit returns, and
// it batches the commits of concurrent writers into one sync. Values
// smaller than Options.ValueThreshold live in the LSM tree, larger ones
// (big Wasm modules) in the value log. Close flushes the memtable to a
// table file.
//
// DefaultOptions sizes Badger for a small board; Badger's own defaults
// are for servers and want gigabytes. Badger never logs unless
// Options.Logger is set.
//
// # 32-bit machines
//
// Open refuses to run on a 32-bit machine and returns ErrUnsupported:
// there Badger silently corrupts the table files it writes once a memtable
// is flushed (a bug in the allocator of its dependency ristretto; see
// ErrUnsupported and RATIONALE.md). Use package boltstore there;
// store.Open does.
package badgerstore
