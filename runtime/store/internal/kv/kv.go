// Package kv holds what the store contract and its backends share: the
// sentinel errors and the open/closed bookkeeping.
//
// It exists to break an import cycle. Package store re-exports the sentinels
// and its Open picks a backend, so store imports the backends; the backends
// must return the very same error values, so they cannot import store. Both
// import this package instead.
package kv

import (
	"errors"
	"sync"
)

// The sentinel errors of the store contract. Package store re-exports them
// under the same names; callers compare against those.
var (
	ErrNotFound = errors.New("store: key not found")
	ErrClosed   = errors.New("store: closed")
	ErrEmptyKey = errors.New("store: empty key: keys must be at least one byte long")
)

// Gate tracks the operations in flight on a store so that Close can wait
// for them before it releases the backend. Its zero value is an open gate.
//
// A sync.RWMutex would deadlock here: Scan holds its read lock while the
// callback runs, the callback may call Put, and a Close waiting for the
// write lock makes that second read lock block forever. With Gate, an
// operation started after Close began fails with ErrClosed instead.
type Gate struct {
	mu       sync.Mutex
	closed   bool
	inFlight sync.WaitGroup
}

// Enter reports whether the store is still open; if it is, the caller must
// call Leave when its operation ends.
func (g *Gate) Enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.inFlight.Add(1)
	return true
}

// Leave ends an operation started by a successful Enter.
func (g *Gate) Leave() { g.inFlight.Done() }

// Close shuts the gate, waits for the operations in flight and reports
// whether this call was the one that closed it.
func (g *Gate) Close() bool {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return false
	}
	g.closed = true
	g.mu.Unlock()
	g.inFlight.Wait()
	return true
}
