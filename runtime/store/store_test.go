package store_test

import (
	"math/bits"
	"testing"

	"github.com/tern-iot/tern/runtime/store"
	"github.com/tern-iot/tern/runtime/store/storetest"
)

func open(t *testing.T, dir string) store.Store {
	t.Helper()
	s, err := store.Open(dir)
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	return s
}

// TestOpen runs the conformance suite against the default backend of the
// machine the tests run on: Badger on amd64 and arm64, bbolt on 386 and
// arm.
func TestOpen(t *testing.T) {
	t.Logf("default backend: %s", store.Backend())
	storetest.Conformance(t, open)
}

// TestBackendMatchesWordSize catches a 32-bit GOARCH missing from the
// build constraints of open_32.go: such a build would pick Badger, which
// refuses to open there.
func TestBackendMatchesWordSize(t *testing.T) {
	want := "badger"
	if bits.UintSize == 32 {
		want = "bolt"
	}
	if got := store.Backend(); got != want {
		t.Fatalf("Backend() = %q on a %d-bit machine, want %q", got, bits.UintSize, want)
	}
}
