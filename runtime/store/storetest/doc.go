// Package storetest is the conformance suite of the store contract, in the
// manner of testing/fstest: every backend runs it, and so does the default
// backend.Open, on every architecture the agent is built for.
//
// Besides the plain contract (get, put, delete, scan order and bounds,
// binary and large values, ErrClosed, persistence) the suite writes more
// data than a memtable holds, closes, reopens and reads it all back. Small
// data sets can live entirely in a write-ahead log or a memtable, so only a
// large one proves that the data written to table files can be read again:
// that is exactly how Badger fails on 32-bit machines.
package storetest
