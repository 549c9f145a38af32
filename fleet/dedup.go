package fleet

import "sync"

// Dedup drops event reports a consumer has already seen. Delivery is at
// least once (QoS 1, and a device's outbox sends again what the broker did
// not acknowledge), and EventReport.Seq numbers each device's events in the
// order they happened, across restarts. So Dedup keeps the highest Seq seen
// per device and epoch and lets through only reports above it: the
// consumer sees each numbered event once and never one older than what it
// already saw.
//
// A device whose store was wiped (re-flashed, reinstalled) numbers from 1
// again under a new EventReport.Epoch; Dedup counts each epoch on its own,
// so the reinstalled device's events pass from the first. Unnumbered
// reports (Seq 0, from devices that predate the field) always pass: there
// is nothing to tell their copies apart by but EventReport.ID.
//
// The zero Dedup is ready to use; it is safe for concurrent use.
type Dedup struct {
	mu   sync.Mutex
	last map[dedupKey]uint64 // device and epoch → highest Seq let through
	// epoch is each device's latest epoch, for Last.
	epoch map[string]string
}

type dedupKey struct{ device, epoch string }

// Fresh reports whether e is new to the consumer, and if it is numbered,
// records its Seq as the highest of its device and epoch.
func (d *Dedup) Fresh(e EventReport) bool {
	if e.Seq == 0 {
		return true
	}
	k := dedupKey{e.Device, e.Epoch}
	d.mu.Lock()
	defer d.mu.Unlock()
	last, seen := d.last[k]
	if e.Seq <= last {
		return false
	}
	if d.last == nil {
		d.last = make(map[dedupKey]uint64)
		d.epoch = make(map[string]string)
	}
	d.last[k] = e.Seq
	if !seen {
		d.epoch[e.Device] = e.Epoch
	}
	return true
}

// Last returns the highest Seq let through for device in its latest epoch
// (the last one Dedup met), 0 if none.
func (d *Dedup) Last(device string) uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last[dedupKey{device, d.epoch[device]}]
}
