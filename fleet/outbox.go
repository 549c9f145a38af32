package fleet

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"

	"github.com/tern-iot/tern/runtime/store"
)

// Defaults of the outbox (DeviceOptions.OutboxLimit and InFlight).
const (
	// DefaultOutboxLimit is how many undelivered event reports a device
	// keeps: at a few hundred bytes each, about 30 MB of store at most,
	// which is days of a busy device offline.
	DefaultOutboxLimit = 100_000
	// DefaultInFlight is how many event reports a device publishes before
	// it waits for the broker's acknowledgement of the oldest.
	DefaultInFlight = 32
)

// Store keys of the outbox. Event reports live under outboxEvents + the
// sequence number as 8 big-endian bytes, so that a scan returns them in
// order; outboxAcked holds the highest sequence number the broker has
// acknowledged (or that was dropped), as decimal text; outboxEpoch names
// this numbering (EventReport.Epoch), made when the store is new.
var (
	outboxEvents = []byte("fleet/outbox/event/")
	outboxAcked  = []byte("fleet/outbox/acked")
	outboxEpoch  = []byte("fleet/outbox/epoch")
	// outboxDropped counts, as decimal text, the reports dropped because
	// the outbox was full that no events.dropped report has told of yet.
	outboxDropped = []byte("fleet/outbox/dropped")
)

// outbox is the device's durable queue of event reports: an event is in
// the store before PublishEvent returns, and leaves it only once the broker
// acknowledged it. Sequence numbers (EventReport.Seq) grow across restarts:
// the next one is one more than the highest ever stored or acknowledged.
//
// Crash safety: append is one Put. ack first records the new high-water
// mark, then deletes the acknowledged reports; a crash in between leaves
// reports at or below the mark, which open deletes. A crash between the
// broker's acknowledgement and ack sends those reports again after the
// restart, with the same Seq: consumers drop them (at least once on the
// wire, exactly once for the consumer).
type outbox struct {
	st    store.Store
	limit int
	log   *slog.Logger
	epoch string // names this store's numbering; a wiped store makes a new one

	mu      sync.Mutex
	next    uint64 // Seq of the next report appended
	acked   uint64 // every Seq ≤ acked was delivered, or dropped
	dropped uint64 // reports dropped because the outbox was full, not reported yet
	deleted uint64 // every report ≤ deleted is gone from the store
	wake    chan struct{}
	swept   chan struct{} // acked moved: sweep has reports to delete
}

// pendingReport is one stored event report.
type pendingReport struct {
	seq     uint64
	payload []byte
}

// openOutbox reads the outbox's bookkeeping from st and deletes what a
// crash left behind.
func openOutbox(st store.Store, limit int, log *slog.Logger) (*outbox, error) {
	o := &outbox{st: st, limit: limit, log: log, wake: make(chan struct{}, 1), swept: make(chan struct{}, 1)}
	epoch, err := outboxEpochOf(st)
	if err != nil {
		return nil, err
	}
	o.epoch = epoch
	if o.acked, err = storedCount(st, outboxAcked, "the acknowledged mark"); err != nil {
		return nil, err
	}
	if o.dropped, err = storedCount(st, outboxDropped, "the count of dropped reports"); err != nil {
		return nil, err
	}
	var stale [][]byte
	last := o.acked
	err = st.Scan(outboxEvents, func(key, _ []byte) error {
		seq, ok := outboxSeq(key)
		if !ok {
			o.log.Warn("fleet: outbox: ignoring a key that is not an event report", "key", fmt.Sprintf("%q", key))
			return nil
		}
		if seq <= o.acked {
			stale = append(stale, append([]byte(nil), key...))
		}
		last = max(last, seq)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: outbox: %w", err)
	}
	for _, k := range stale {
		if err := st.Delete(k); err != nil {
			return nil, fmt.Errorf("fleet: outbox: %w", err)
		}
	}
	o.next = last + 1
	o.deleted = o.acked
	if n := o.next - 1 - o.acked; n > 0 {
		o.log.Info("fleet: outbox holds reports from before; they go out once connected", "reports", n, "first_seq", o.acked+1)
	}
	return o, nil
}

// storedCount reads a decimal count kept under key; none is 0.
func storedCount(st store.Store, key []byte, what string) (uint64, error) {
	b, err := st.Get(key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("fleet: outbox: %w", err)
	}
	n, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("fleet: outbox: %s %q in the store is not a number: %w", what, b, err)
	}
	return n, nil
}

// outboxEpochOf returns the epoch kept in st, making one (16 random hex
// digits) if st has none: a new or wiped store, or one from before epochs.
func outboxEpochOf(st store.Store) (string, error) {
	b, err := st.Get(outboxEpoch)
	if err == nil && len(b) > 0 {
		return string(b), nil
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("fleet: outbox: %w", err)
	}
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("fleet: outbox: making an epoch: %w", err)
	}
	epoch := hex.EncodeToString(r[:])
	if err := st.Put(outboxEpoch, []byte(epoch)); err != nil {
		return "", fmt.Errorf("fleet: outbox: storing the epoch: %w", err)
	}
	return epoch, nil
}

func outboxKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), outboxEvents...), seq)
}

func outboxSeq(key []byte) (uint64, bool) {
	if len(key) != len(outboxEvents)+8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(key[len(outboxEvents):]), true
}

// append stores the report that encode makes for the next sequence number.
// When the outbox is full, the oldest report goes to make room, and is
// counted for a later events.dropped report. An encode error stores
// nothing and takes no number; PublishEvent's encode never fails (what
// cannot be sent goes as a marker), so that no event is refused for what
// it holds.
func (o *outbox) append(encode func(epoch string, seq uint64) ([]byte, error)) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	b, err := encode(o.epoch, o.next)
	if err != nil {
		return err
	}
	if held := o.next - 1 - o.acked; held >= uint64(o.limit) {
		// Make room for this one; more than one if the limit was lowered.
		excess := held - uint64(o.limit) + 1
		if o.dropped == 0 {
			o.log.Warn("fleet: outbox full: dropping the oldest event reports until the broker is reachable", "limit", o.limit)
		}
		// The count first: a cut after it over-reports, never hides, a drop.
		if err := o.st.Put(outboxDropped, strconv.AppendUint(nil, o.dropped+excess, 10)); err != nil {
			return fmt.Errorf("fleet: outbox: record dropped reports: %w", err)
		}
		o.dropped += excess
		if err := o.advance(o.acked + excess); err != nil {
			return err
		}
	}
	if err := o.st.Put(outboxKey(o.next), b); err != nil {
		return fmt.Errorf("fleet: outbox: store event report %d: %w", o.next, err)
	}
	o.next++
	select {
	case o.wake <- struct{}{}:
	default:
	}
	return nil
}

// replace stores payload in place of report seq, under the same number:
// the report as stored can never be sent (see Device.sendable), and the
// one put in its place must be what a restart sends. A report acknowledged
// or dropped meanwhile is left alone.
func (o *outbox) replace(seq uint64, payload []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if seq <= o.acked || seq >= o.next {
		return nil
	}
	if err := o.st.Put(outboxKey(seq), payload); err != nil {
		return fmt.Errorf("fleet: outbox: replace event report %d: %w", seq, err)
	}
	return nil
}

// read returns up to n reports not yet acknowledged with Seq > after, in
// order.
func (o *outbox) read(after uint64, n int) ([]pendingReport, error) {
	o.mu.Lock()
	after = max(after, o.acked)
	o.mu.Unlock()
	var out []pendingReport
	errEnough := errors.New("enough")
	err := o.st.Scan(outboxEvents, func(key, value []byte) error {
		seq, ok := outboxSeq(key)
		if !ok || seq <= after {
			return nil
		}
		out = append(out, pendingReport{seq: seq, payload: append([]byte(nil), value...)})
		if len(out) == n {
			return errEnough
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return nil, fmt.Errorf("fleet: outbox: read: %w", err)
	}
	return out, nil
}

// ack records that the broker acknowledged every report up to seq.
func (o *outbox) ack(seq uint64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if seq <= o.acked {
		return nil // dropped meanwhile, or acknowledged twice
	}
	return o.advance(seq)
}

// advance moves the acknowledged mark to seq; sweep deletes the reports up
// to it. The caller holds o.mu.
func (o *outbox) advance(seq uint64) error {
	if err := o.st.Put(outboxAcked, strconv.AppendUint(nil, seq, 10)); err != nil {
		return fmt.Errorf("fleet: outbox: record acknowledgement of %d: %w", seq, err)
	}
	o.acked = seq
	select {
	case o.swept <- struct{}{}:
	default:
	}
	return nil
}

// sweep deletes acknowledged reports until ctx is done. It runs beside the
// sender, so that its deletes share the disk syncs of the sender's writes
// (both backends commit concurrent writes together) instead of adding one
// each to the sender's path. What it has not deleted when the device stops
// is deleted by the next open: the mark covers it.
func (o *outbox) sweep(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-o.swept:
		}
		o.mu.Lock()
		from, to := o.deleted+1, o.acked
		o.mu.Unlock()
		for s := from; s <= to; s++ {
			if err := o.st.Delete(outboxKey(s)); err != nil {
				o.log.Warn("fleet: outbox: cannot delete an acknowledged report; it goes at the next start", "seq", s, "err", err)
				break
			}
			o.mu.Lock()
			o.deleted = s
			o.mu.Unlock()
		}
	}
}

// position returns the acknowledged mark and the number of reports waiting.
func (o *outbox) position() (acked uint64, pending uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.acked, o.next - 1 - o.acked
}

// droppedCount returns the count of reports dropped because the outbox was
// full that no events.dropped report has told of yet.
func (o *outbox) droppedCount() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.dropped
}

// toldDropped records that an events.dropped report, now in the outbox,
// told of n dropped reports.
func (o *outbox) toldDropped(n uint64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	left := o.dropped - min(n, o.dropped)
	if err := o.st.Put(outboxDropped, strconv.AppendUint(nil, left, 10)); err != nil {
		return fmt.Errorf("fleet: outbox: record dropped reports: %w", err)
	}
	o.dropped = left
	return nil
}
