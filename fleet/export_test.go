package fleet

import (
	"context"
	"net"
	"testing"

	"github.com/tern-iot/tern/runtime/store"
)

// NewStore opens a store in a new directory for a device's outbox and
// closes it when the test ends.
func NewStore(t testing.TB) store.Store {
	t.Helper()
	return testStore(t, t.TempDir())
}

// StoreAt opens the store in dir; a test that restarts a device opens
// the same directory again after closing the first.
func StoreAt(t testing.TB, dir string) store.Store { return testStore(t, dir) }

func testStore(t testing.TB, dir string) store.Store {
	t.Helper()
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// WithDialer returns o with the network dialer replaced (DeviceOptions.Dial),
// so a test can hold the connection and cut it abruptly.
func WithDialer(o DeviceOptions, dial func(ctx context.Context, network, addr string) (net.Conn, error)) DeviceOptions {
	o.Dial = dial
	return o
}

// WithOperatorDialer is WithDialer for an Operator.
func WithOperatorDialer(o OperatorOptions, dial func(ctx context.Context, network, addr string) (net.Conn, error)) OperatorOptions {
	o.dial = dial
	return o
}
