package backend_test

import (
	"math/bits"
	"strings"
	"testing"

	"github.com/tern-iot/tern/runtime/store"
	"github.com/tern-iot/tern/runtime/store/backend"
	"github.com/tern-iot/tern/runtime/store/storetest"
)

func open(t *testing.T, dir string) store.Store {
	t.Helper()
	s, err := backend.Open(dir)
	if err != nil {
		t.Fatalf("backend.Open: %v", err)
	}
	return s
}

// TestOpen runs the conformance suite against the default backend of the
// machine the tests run on: Badger on amd64 and arm64, bbolt on 386 and
// arm.
func TestOpen(t *testing.T) {
	t.Logf("default backend: %s", backend.Default())
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
	if got := backend.Default(); got != want {
		t.Fatalf("Backend() = %q on a %d-bit machine, want %q", got, bits.UintSize, want)
	}
}

// OpenBackend opens each backend this build has by name and writes through
// it; on a 32-bit machine asking for Badger is refused with the reason, and
// an unknown name is refused everywhere.
func TestOpenBackend(t *testing.T) {
	for _, name := range []string{"", "bolt", "badger"} {
		s, err := backend.OpenNamed(name, t.TempDir())
		if name == "badger" && bits.UintSize == 32 {
			if err == nil || !strings.Contains(err.Error(), "not in 32-bit builds") {
				t.Errorf("OpenBackend(badger) on 32 bits: err = %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("OpenBackend(%q): %v", name, err)
		}
		if err := s.Put([]byte("k"), []byte("v")); err != nil {
			t.Errorf("%q: Put: %v", name, err)
		}
		if v, err := s.Get([]byte("k")); err != nil || string(v) != "v" {
			t.Errorf("%q: Get = %q, %v", name, v, err)
		}
		s.Close()
	}
	if _, err := backend.OpenNamed("sqlite", t.TempDir()); err == nil || !strings.Contains(err.Error(), `"sqlite" is not a store backend`) {
		t.Errorf("OpenBackend(sqlite): err = %v", err)
	}
}
