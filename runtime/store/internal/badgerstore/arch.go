package badgerstore

import (
	"errors"
	"fmt"
	"math/bits"
	"runtime"
)

// ErrUnsupported is returned (wrapped) by Open on 32-bit machines.
//
// There, Badger v4 corrupts every table whose build outgrows the first
// buffer of its allocator: ristretto's z.Allocator computes
// uint64((bufIdx+1)<<32) in a 32-bit int, which is 0, so it hands out the
// start of its first buffer again and the table's first blocks are
// overwritten. Keys vanish or reads panic once a memtable was flushed.
// RATIONALE.md has the evidence. No option of Badger removes the
// cause, so badgerstore refuses rather than lose data.
var ErrUnsupported = errors.New("badgerstore: Badger loses data on 32-bit machines; use the bolt backend (package boltstore, which backend.Open picks there)")

// supported returns ErrUnsupported, wrapped with the architecture, on a
// 32-bit machine. It is a run-time check on the word size, not a build
// constraint, so that the refusal also covers a 32-bit GOARCH that the
// build constraints of package store do not list.
func supported() error {
	if bits.UintSize == 32 {
		return fmt.Errorf("badgerstore: open on GOARCH=%s: %w", runtime.GOARCH, ErrUnsupported)
	}
	return nil
}
