package backend_test

import (
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/tern-iot/tern/runtime/store"
	"github.com/tern-iot/tern/runtime/store/backend"
)

// The agent keeps its records under prefixes and reads them back in key
// order. Here: an outbox drained in order, each report deleted once sent.
func Example() {
	dir, err := os.MkdirTemp("", "tern-store-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	s, err := backend.Open(dir) // Badger on 64-bit machines, bbolt on 32-bit ones
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	if err := s.Put([]byte("target/version"), []byte("7")); err != nil {
		log.Fatal(err)
	}
	for i, report := range []string{"plan.found", "task.done", "converged"} {
		key := fmt.Appendf(nil, "outbox/%08d", i)
		if err := s.Put(key, []byte(report)); err != nil {
			log.Fatal(err)
		}
	}

	version, err := s.Get([]byte("target/version"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("target version %s\n", version)

	err = s.Scan([]byte("outbox/"), func(key, value []byte) error {
		fmt.Printf("send %s: %s\n", key, value)
		return s.Delete(key) // acknowledged: forget it
	})
	if err != nil {
		log.Fatal(err)
	}

	_, err = s.Get([]byte("outbox/00000000"))
	fmt.Println("sent report still stored:", !errors.Is(err, store.ErrNotFound))

	// Output:
	// target version 7
	// send outbox/00000000: plan.found
	// send outbox/00000001: task.done
	// send outbox/00000002: converged
	// sent report still stored: false
}
