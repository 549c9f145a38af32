//go:build !(386 || arm || mips || mipsle)

package store

import "github.com/tern-iot/tern/runtime/store/badgerstore"

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
