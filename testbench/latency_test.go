package testbench_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/testbench"
)

// marks is a slog handler that notes when the records the benchmark waits
// for were logged: the device's CONNACK, the target handed to the agent,
// and convergence.
type marks struct {
	mu   sync.Mutex
	at   map[string]time.Time
	seen chan string
}

func (m *marks) Enabled(context.Context, slog.Level) bool { return true }
func (m *marks) WithAttrs([]slog.Attr) slog.Handler       { return m }
func (m *marks) WithGroup(string) slog.Handler            { return m }

func (m *marks) Handle(_ context.Context, r slog.Record) error {
	switch r.Message {
	case "fleet: connected to broker", "target received", "converged":
	default:
		return nil
	}
	m.mu.Lock()
	if _, ok := m.at[r.Message]; !ok {
		m.at[r.Message] = r.Time
	}
	m.mu.Unlock()
	select {
	case m.seen <- r.Message:
	default:
	}
	return nil
}

func (m *marks) wait(b *testing.B, msg string) time.Time {
	b.Helper()
	timeout := time.After(30 * time.Second)
	for {
		m.mu.Lock()
		at, ok := m.at[msg]
		m.mu.Unlock()
		if ok {
			return at
		}
		select {
		case <-m.seen:
		case <-timeout:
			b.Fatalf("no %q logged after 30s", msg)
		}
	}
}

// BenchmarkConnackToTarget: a target is pushed while the device is off;
// the device starts, connects, and the retained target reaches the agent.
// It reports the time from the broker's CONNACK to the target handed to
// the agent (stored, planning starts) and to convergence, p50 and p99 over
// the iterations (run with -benchtime=100x), on each broker in turn in
// one run: the embedded one, Mosquitto, and a three-node NATS cluster of
// `tern broker` processes with the operator on node 1 and the device on
// node 2.
func BenchmarkConnackToTarget(b *testing.B) {
	one := func(start func(testing.TB) string) func(testing.TB) (string, string) {
		return func(tb testing.TB) (string, string) { url := start(tb); return url, url }
	}
	for _, br := range []struct {
		name  string
		start func(testing.TB) (op, dev string)
	}{
		{"embedded", one(fleettest.Embedded)},
		{"mosquitto", one(fleettest.Mosquitto)},
		{"cluster", func(tb testing.TB) (string, string) {
			c, err := testbench.StartCluster(context.Background(), testbench.ClusterOptions{Dir: tb.TempDir()})
			if err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(func() { c.Close() })
			return c.URLs()[0], c.URLs()[1]
		}},
	} {
		b.Run(br.name, func(b *testing.B) {
			opURL, url := br.start(b)
			op := operator(b, opURL)
			dir := b.TempDir()
			var toTarget, toConverged []time.Duration
			for i := range b.N {
				on := i%2 == 0
				push(b, op, uint64(i+1), fmt.Sprintf(`{"relays":{"heater":%t}}`, on))
				m := &marks{at: map[string]time.Time{}, seen: make(chan string, 1)}
				d := startDeviceLogging(b, url, dir, slog.New(m))
				connack := m.wait(b, "fleet: connected to broker")
				toTarget = append(toTarget, m.wait(b, "target received").Sub(connack))
				toConverged = append(toConverged, m.wait(b, "converged").Sub(connack))
				d.stop()
			}
			for _, s := range []struct {
				name string
				ds   []time.Duration
			}{{"target", toTarget}, {"converged", toConverged}} {
				slices.Sort(s.ds)
				b.ReportMetric(float64(s.ds[len(s.ds)/2].Microseconds())/1000, "ms-p50-"+s.name)
				b.ReportMetric(float64(s.ds[len(s.ds)*99/100].Microseconds())/1000, "ms-p99-"+s.name)
			}
		})
	}
}
