package fleet_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/devbroker"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/runtime/api"
)

// BenchmarkOutbox measures event reports through the outbox, side by side:
// stored only (the device offline: one synced Put each), and stored,
// published and acknowledged by the embedded broker and received by a
// subscriber in the broker, with 1 and with 32 reports in flight. It
// reports events per second; ns/op is per event.
func BenchmarkOutbox(b *testing.B) {
	event := api.Event{ID: "5f0c2a9e1b7d4c3a8e6f0b12", Time: time.Now().UTC(), Kind: api.EventTaskDone,
		TargetVersion: 7, Module: "relay", Job: "switch", Path: "/relays/fan"}
	b.Run("stored-offline", func(b *testing.B) {
		d, err := fleet.NewDevice(fleet.DeviceOptions{Broker: "tcp://127.0.0.1:1", Topics: topics, Device: "pi-b", Store: fleettest.Store(b)})
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for range b.N {
			if err := d.PublishEvent(b.Context(), event); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	for _, inFlight := range []int{1, 32} {
		b.Run(fmt.Sprintf("delivered-inflight-%d", inFlight), func(b *testing.B) {
			var seen atomic.Uint64
			done := make(chan struct{}, 1)
			want := uint64(b.N)
			broker := fleettest.RestartableEmbedded(b, func(br *devbroker.Broker) error {
				return br.Subscribe(topics.Events("pi-b"), func(_ string, payload []byte) {
					r, err := fleet.ParseEventReport(payload)
					if err == nil && r.Seq >= want && seen.Swap(r.Seq) < want {
						done <- struct{}{}
					}
				})
			})
			d, err := fleet.NewDevice(fleet.DeviceOptions{
				Broker: broker.URL, Topics: topics, Device: "pi-b", Store: fleettest.Store(b), InFlight: inFlight,
				Logger: slog.New(slog.DiscardHandler),
			})
			if err != nil {
				b.Fatal(err)
			}
			stop := runB(b, d)
			defer stop()
			for !d.Connected() {
				time.Sleep(10 * time.Millisecond)
			}
			b.ResetTimer()
			for range b.N {
				if err := d.PublishEvent(b.Context(), event); err != nil {
					b.Fatal(err)
				}
			}
			select {
			case <-done:
			case <-time.After(time.Minute):
				b.Fatalf("subscriber saw Seq %d of %d after a minute", seen.Load(), b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

func runB(b *testing.B, d *fleet.Device) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	return func() {
		cancel()
		<-done
	}
}
