package fleet

import (
	"context"
	"net"
	"testing"

	"github.com/tern-iot/tern/runtime/store"
	"github.com/tern-iot/tern/runtime/store/backend"
)

func testStore(t testing.TB, dir string) store.Store {
	t.Helper()
	st, err := backend.Open(dir)
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
