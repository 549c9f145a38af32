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
// # Compaction
//
// An idle store wakes nobody. Badger's compactors, which wake every 50 ms
// for as long as the database is open, are off (Options.NumCompactors 0);
// instead the store compacts on a goroutine of its own that writes wake:
// every quarter memtable written it looks at level 0, and once that holds
// more than Options.NumLevelZeroTables tables it merges every level into
// the last one (Badger's DB.Flatten), then rewrites the value-log files
// that are half garbage or more (DB.RunValueLogGC). So the tables stay
// bounded by what is live, and by the writes since the last compaction.
// Badger still runs three timers that no option turns off: its allocator
// pool's (every 2 s) and two once a minute (see RATIONALE.md).
//
// # 32-bit machines
//
// Open refuses to run on a 32-bit machine and returns ErrUnsupported:
// there Badger silently corrupts the table files it writes once a memtable
// is flushed (a bug in the allocator of its dependency ristretto; see
// ErrUnsupported and RATIONALE.md). Use package boltstore there;
// backend.Open (package runtime/store/backend) does.
package badgerstore
