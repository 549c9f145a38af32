package fleet

import "sync"

// Dedup drops event reports a consumer has already seen. Delivery is at
// least once (QoS 1, and a device's outbox sends again what the broker did
// not acknowledge), and EventReport.Seq numbers each device's events in the
// order they happened, across restarts. So Dedup keeps the highest Seq seen
// per device and lets through only reports above it: the consumer sees each
// numbered event once and never one older than what it already saw.
// Unnumbered reports (Seq 0, from devices that predate the field) always
// pass: there is nothing to tell their copies apart by but EventReport.ID.
//
// A device whose store was wiped starts numbering at 1 again; Dedup drops
// its events until they pass the old highest number. Use a new Dedup (or
// Forget the device) when a device is reinstalled.
//
// The zero Dedup is ready to use; it is safe for concurrent use.
type Dedup struct {
	mu   sync.Mutex
	last map[string]uint64 // device → highest Seq let through
}

// Fresh reports whether e is new to the consumer, and if it is numbered,
// records its Seq as the device's highest.
func (d *Dedup) Fresh(e EventReport) bool {
	if e.Seq == 0 {
		return true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if e.Seq <= d.last[e.Device] {
		return false
	}
	if d.last == nil {
		d.last = make(map[string]uint64)
	}
	d.last[e.Device] = e.Seq
	return true
}

// Last returns the highest Seq let through for device, 0 if none.
func (d *Dedup) Last(device string) uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last[device]
}

// Forget drops what d knows of device, so that its numbering may start
// again (a reinstalled device).
func (d *Dedup) Forget(device string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.last, device)
}
