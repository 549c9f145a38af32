package fleet

import (
	"context"
	"net"
	"sync/atomic"
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

// WithLostTargets returns o with the device losing its first n target
// deliveries, as if the broker had not served them (a NATS node whose
// retained index lags).
func WithLostTargets(o DeviceOptions, n int32) DeviceOptions {
	o.lostTargets = new(atomic.Int32)
	o.lostTargets.Store(n)
	return o
}
