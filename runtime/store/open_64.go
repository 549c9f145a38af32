//go:build !(386 || arm || mips || mipsle)

package store

import (
	"fmt"

	"github.com/tern-iot/tern/runtime/store/badgerstore"
	"github.com/tern-iot/tern/runtime/store/boltstore"
)

// The default backend of a 64-bit build. open_32.go lists the 32-bit GOARCH
// values; the store's tests check that this choice agrees with the word
// size of the machine they run on.

var _ Store = (*badgerstore.Store)(nil)

// Open opens, creating it if needed, the store kept in directory dir with
// the default backend of this machine: Badger here, with
// badgerstore.DefaultOptions.
func Open(dir string) (Store, error) {
	s, err := badgerstore.Open(dir, badgerstore.DefaultOptions())
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Backend names the backend Open uses on this machine: "badger" or "bolt".
func Backend() string { return "badger" }

// OpenBackend opens the store in dir with the backend named: "badger",
// "bolt", or "" for this machine's default (Badger).
func OpenBackend(backend, dir string) (Store, error) {
	switch backend {
	case "", "badger":
		return Open(dir)
	case "bolt":
		s, err := boltstore.Open(dir)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	return nil, fmt.Errorf("store: %q is not a store backend; use badger or bolt", backend)
}
