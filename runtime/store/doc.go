// Package store is the agent's durable memory: the contract every
// persistence backend meets. Package backend opens the right one for the
// machine the agent runs on; the contract is apart from it, so that code
// that only uses a store (the fleet's outbox) does not link Badger and
// bbolt.
//
// What lives here must survive a power cut: the target and its version, the
// last reported state, the installed Wasm modules, plan progress and the
// outbox of reports not yet acknowledged. A Store is therefore a small,
// ordered, durable key-value store: Put and Delete have reached the disk
// (fsync) when they return, and Scan walks keys in ascending byte order so
// that callers can lay out records under prefixes ("target/", "modules/",
// "outbox/00000042") and read them back in order.
//
// # Backends
//
// Two backends meet the contract, each in its own package:
//
//   - badgerstore: Badger v4, an LSM tree with a value log. The default on
//     64-bit machines (amd64, arm64: Pi 3/4/5, Zero 2 W with a 64-bit OS).
//   - boltstore: bbolt, a single-file copy-on-write B+tree. The default on
//     32-bit machines (armv6/armv7: Pi Zero W, Pi 1, 32-bit Raspberry Pi OS).
//
// Badger is not used on 32-bit machines because, there, it silently loses
// every key that was flushed from its memtable to a table file
// (RATIONALE.md has the evidence); badgerstore refuses to open on
// such machines rather than lose data.
//
// Package backend's Open chooses between them (see its doc).
//
// # Keys and values
//
// Keys are non-empty byte strings; an empty key is refused with ErrEmptyKey.
// Keep keys short (paths, not payloads): bbolt limits a key to 32 KiB and
// Badger to about 64 KB. Values may be empty or several megabytes (a Wasm
// module). The store never keeps a caller's slice after a call returns, and
// the slice Get returns belongs to the caller.
//
// # Concurrency
//
// A Store is safe for concurrent use. The callback given to Scan may call
// Get, Put and Delete on the same store (deleting each record of an outbox
// as it is sent is the typical use); whether the running scan then sees
// those writes is not specified. The callback must not call Close.
//
// Package storetest holds the conformance suite that every backend runs.
package store
