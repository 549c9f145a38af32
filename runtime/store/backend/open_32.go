//go:build 386 || arm || mips || mipsle

package backend

import (
	"fmt"

	"github.com/tern-iot/tern/runtime/store"

	"github.com/tern-iot/tern/runtime/store/internal/boltstore"
)

// The default backend of a 32-bit build: bbolt, because Badger loses data
// on 32-bit machines (see the package doc and RATIONALE.md).

var _ store.Store = (*boltstore.Store)(nil)

// Open opens, creating it if needed, the store kept in directory dir with
// the default backend of this machine: bbolt here, in the file dir/tern.db.
func Open(dir string) (store.Store, error) {
	s, err := boltstore.Open(dir)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Default names the backend Open uses on this machine: "badger" or "bolt".
func Default() string { return "bolt" }

// OpenNamed opens the store in dir with the backend named: "bolt", or
// "" for this machine's default. A 32-bit build has no Badger; asking for
// it is an error that says so.
func OpenNamed(name, dir string) (store.Store, error) {
	switch name {
	case "", "bolt":
		return Open(dir)
	case "badger":
		return nil, fmt.Errorf("store: badger is not in 32-bit builds (it loses data there); use bolt or leave the backend out")
	}
	return nil, fmt.Errorf("store: %q is not a store backend; use badger or bolt", name)
}
