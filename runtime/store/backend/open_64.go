//go:build !(386 || arm || mips || mipsle)

package backend

import (
	"fmt"

	"github.com/tern-iot/tern/runtime/store"
	"github.com/tern-iot/tern/runtime/store/internal/badgerstore"
	"github.com/tern-iot/tern/runtime/store/internal/boltstore"
)

// The default backend of a 64-bit build. open_32.go lists the 32-bit GOARCH
// values; the store's tests check that this choice agrees with the word
// size of the machine they run on.

var _ store.Store = (*badgerstore.Store)(nil)

// Open opens, creating it if needed, the store kept in directory dir with
// the default backend of this machine: Badger here, with
// badgerstore.DefaultOptions.
func Open(dir string) (store.Store, error) {
	s, err := badgerstore.Open(dir, badgerstore.DefaultOptions())
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Default names the backend Open uses on this machine: "badger" or "bolt".
func Default() string { return "badger" }

// OpenNamed opens the store in dir with the backend named: "badger",
// "bolt", or "" for this machine's default (Badger).
func OpenNamed(name, dir string) (store.Store, error) {
	switch name {
	case "", "badger":
		return Open(dir)
	case "bolt":
		s, err := boltstore.Open(dir)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	return nil, fmt.Errorf("store: %q is not a store backend; use badger or bolt", name)
}
