package fleet

import "sync"

// Dedup drops event reports a consumer has already seen. Delivery is at
// least once (QoS 1, and a device's outbox sends again what the broker did
// not acknowledge), and EventReport.Seq numbers each device's events in the
// order they happened, across restarts. Dedup lets each number through
// once per device and epoch.
//
// Reports usually arrive in order, but not always: a NATS broker
// redelivers a report its consumer received and did not acknowledge only
// after its ack wait (30 s), behind later ones. So Dedup does not drop
// what is below the highest number seen: it keeps, per device and epoch,
// the number below which it saw everything, and which of the next
// dedupWindow numbers it saw. A report more than dedupWindow behind the
// highest is taken for a copy; the first report of a device sets where it
// begins, so a consumer that joins late does not take the device's older
// events (which it never saw) for new ones when copies of them come.
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
	seen map[dedupKey]*seqWindow
	// epoch is each device's latest epoch, for Last.
	epoch map[string]string
}

type dedupKey struct{ device, epoch string }

// dedupWindow is how far behind the highest number seen a report may come
// and still count as new: 1,024 events, a device's whole outbox window
// many times over.
const dedupWindow = 1024

// seqWindow is what one device and epoch's numbers Dedup has seen: every
// number up to done, and those of done+1 … done+dedupWindow whose bit
// (number − done − 1) is set in bits.
type seqWindow struct {
	done uint64
	high uint64
	bits []uint64 // dedupWindow bits, made at the first gap
}

// add records seq and reports whether it was new.
func (w *seqWindow) add(seq uint64) bool {
	if seq <= w.done {
		return false
	}
	w.high = max(w.high, seq)
	if seq > w.done+dedupWindow {
		// Too far ahead: give up on the oldest numbers not seen, which
		// then count as copies should they come.
		w.shift(seq - w.done - dedupWindow)
	}
	if seq == w.done+1 && w.bits == nil {
		w.done = seq // in order, the common case: no bits
		return true
	}
	if w.bits == nil {
		w.bits = make([]uint64, dedupWindow/64)
	}
	i := seq - w.done - 1
	if w.bits[i/64]&(1<<(i%64)) != 0 {
		return false
	}
	w.bits[i/64] |= 1 << (i % 64)
	// Whatever is now contiguous from done on is done.
	n := uint64(0)
	for n < dedupWindow && w.bits[n/64]&(1<<(n%64)) != 0 {
		n++
	}
	w.shift(n)
	return true
}

// shift moves done up by n, dropping n bits from the window.
func (w *seqWindow) shift(n uint64) {
	w.done += n
	if w.bits == nil {
		return
	}
	if n >= dedupWindow {
		clear(w.bits)
	} else if n > 0 {
		words, rem := n/64, n%64
		for i := range w.bits {
			var v uint64
			if j := i + int(words); j < len(w.bits) {
				v = w.bits[j] >> rem
				if rem > 0 && j+1 < len(w.bits) {
					v |= w.bits[j+1] << (64 - rem)
				}
			}
			w.bits[i] = v
		}
	}
	for _, b := range w.bits {
		if b != 0 {
			return
		}
	}
	w.bits = nil // no gap left
}

// Fresh reports whether e is new to the consumer, and if it is numbered,
// records its Seq.
func (d *Dedup) Fresh(e EventReport) bool {
	if e.Seq == 0 {
		return true
	}
	k := dedupKey{e.Device, e.Epoch}
	d.mu.Lock()
	defer d.mu.Unlock()
	w, seen := d.seen[k]
	if !seen {
		if d.seen == nil {
			d.seen = make(map[dedupKey]*seqWindow)
			d.epoch = make(map[string]string)
		}
		w = &seqWindow{done: e.Seq - 1}
		d.seen[k] = w
		d.epoch[e.Device] = e.Epoch
	}
	return w.add(e.Seq)
}

// Last returns the highest Seq let through for device in its latest epoch
// (the last one Dedup met), 0 if none.
func (d *Dedup) Last(device string) uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if w := d.seen[dedupKey{device, d.epoch[device]}]; w != nil {
		return w.high
	}
	return 0
}
