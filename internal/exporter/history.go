package exporter

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/dashboard"
)

// The history's buckets (one bbolt file, events.db):
//
//	events  slot key (16 bytes) → received (8 bytes, Unix ns) + the report's JSON
//	seqs    device 0 epoch 0 seq (8 bytes) → slot key: which (device, epoch, seq) are stored
//	devices device 0 slot key → nothing: each device's events, in stored order
//	floors  device 0 epoch → seq (8 bytes): the highest seq pruned; anything at or below is old
//	meta    "next" → the last slot given; "count" → events stored;
//	        "kind/"+kind → events stored of that kind, ever (tern_events_total)
//
// A slot key is an 8-byte slot and the event's seq. Each event that
// arrives in its device's order takes the next slot; one that arrives
// late (a NATS broker redelivers a report after its ack wait, behind
// later ones) takes the slot of the next higher seq of its device and
// epoch that is stored, so it sorts just before it: the stored order is
// the order of arrival, except that each device's events are in seq
// order. Unnumbered events (seq 0, old devices) take the next slot.
var (
	bucketEvents  = []byte("events")
	bucketSeqs    = []byte("seqs")
	bucketDevices = []byte("devices")
	bucketFloors  = []byte("floors")
	bucketMeta    = []byte("meta")

	keyNext  = []byte("next")
	keyCount = []byte("count")
)

const slotKeyLen = 16

// maxKinds bounds the kinds counted on their own (tern_events_total's
// kind label); others count as "other". Kinds come from devices.
const maxKinds = 64

// kindOther is the kind label of events beyond maxKinds or with a kind
// that is not a plain name.
const kindOther = "other"

// history is the event history: a bbolt file in the data directory.
// Each Add is one transaction, synced before it returns.
type history struct {
	db        *bolt.DB
	retain    time.Duration
	maxEvents int
}

// openHistory opens (creating) the history in dir.
func openHistory(dir string, retain time.Duration, maxEvents int) (*history, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("exporter: data directory: %w", err)
	}
	path := filepath.Join(dir, "events.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoFreelistSync: true})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("exporter: %s is in use; is another tern exporter running with --data %s?", path, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("exporter: open the event history %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketEvents, bucketSeqs, bucketDevices, bucketFloors, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("exporter: open the event history %s: %w", path, err)
	}
	return &history{db: db, retain: retain, maxEvents: maxEvents}, nil
}

func (h *history) close() error { return h.db.Close() }

func u64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func be(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func seqPrefix(device, epoch string) []byte {
	b := make([]byte, 0, len(device)+len(epoch)+2+8)
	b = append(b, device...)
	b = append(b, 0)
	b = append(b, epoch...)
	return append(b, 0)
}

// add stores r, received at recv, unless it is stored already (or was
// pruned): stored is false for a copy. The kind counted is returned.
func (h *history) add(r fleet.EventReport, recv time.Time) (stored bool, err error) {
	if strings.IndexByte(r.Epoch, 0) >= 0 {
		return false, fmt.Errorf("exporter: event of %s: epoch has a NUL byte", r.Device)
	}
	body, err := json.Marshal(r)
	if err != nil {
		return false, fmt.Errorf("exporter: encode event of %s: %w", r.Device, err)
	}
	err = h.db.Update(func(tx *bolt.Tx) error {
		events, seqs, devices := tx.Bucket(bucketEvents), tx.Bucket(bucketSeqs), tx.Bucket(bucketDevices)
		meta := tx.Bucket(bucketMeta)
		next := u64(meta.Get(keyNext))
		var slot []byte
		var seqKey []byte
		if r.Seq != 0 {
			prefix := seqPrefix(r.Device, r.Epoch)
			if r.Seq <= u64(tx.Bucket(bucketFloors).Get(prefix)) {
				return nil // pruned already: a copy of an old one
			}
			seqKey = binary.BigEndian.AppendUint64(slices.Clone(prefix), r.Seq)
			if seqs.Get(seqKey) != nil {
				return nil // a copy
			}
			// A late event sorts before the next higher seq stored.
			if k, v := seqs.Cursor().Seek(seqKey); k != nil && bytes.HasPrefix(k, prefix) && len(v) == slotKeyLen {
				slot = binary.BigEndian.AppendUint64(slices.Clone(v[:8]), r.Seq)
			}
		}
		if slot == nil {
			next++
			if err := meta.Put(keyNext, be(next)); err != nil {
				return err
			}
			slot = binary.BigEndian.AppendUint64(be(next), r.Seq)
		}
		val := binary.BigEndian.AppendUint64(nil, uint64(recv.UnixNano()))
		if err := events.Put(slot, append(val, body...)); err != nil {
			return err
		}
		if seqKey != nil {
			if err := seqs.Put(seqKey, slot); err != nil {
				return err
			}
		}
		if err := devices.Put(append(append([]byte(r.Device), 0), slot...), nil); err != nil {
			return err
		}
		if err := meta.Put(keyCount, be(u64(meta.Get(keyCount))+1)); err != nil {
			return err
		}
		kk := kindKey(tx, string(r.Kind))
		if err := meta.Put(kk, be(u64(meta.Get(kk))+1)); err != nil {
			return err
		}
		stored = true
		if h.maxEvents > 0 && int(u64(meta.Get(keyCount))) > h.maxEvents {
			_, err := pruneTx(tx, func(time.Time) bool { return true }, int(u64(meta.Get(keyCount)))-h.maxEvents)
			return err
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("exporter: store event of %s: %w", r.Device, err)
	}
	return stored, nil
}

// kindKey is the meta key that counts kind: its own, or "other" when it
// is not a plain name or maxKinds kinds are counted already.
func kindKey(tx *bolt.Tx, kind string) []byte {
	k := []byte("kind/" + kind)
	if !plainKind(kind) {
		return []byte("kind/" + kindOther)
	}
	meta := tx.Bucket(bucketMeta)
	if meta.Get(k) != nil {
		return k
	}
	n := 0
	c := meta.Cursor()
	for key, _ := c.Seek([]byte("kind/")); key != nil && bytes.HasPrefix(key, []byte("kind/")); key, _ = c.Next() {
		n++
	}
	if n >= maxKinds {
		return []byte("kind/" + kindOther)
	}
	return k
}

// plainKind: 1 to 40 of a-z 0-9 . _ (every kind api names).
func plainKind(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// prune deletes the events received before now - retain, in stored
// order, up to limit per transaction, and returns how many went.
func (h *history) prune(now time.Time) (int, error) {
	if h.retain <= 0 {
		return 0, nil
	}
	cutoff := now.Add(-h.retain)
	total := 0
	for {
		var n int
		err := h.db.Update(func(tx *bolt.Tx) error {
			var err error
			n, err = pruneTx(tx, func(recv time.Time) bool { return recv.Before(cutoff) }, 1000)
			return err
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("exporter: prune the event history: %w", err)
		}
		if n < 1000 {
			return total, nil
		}
	}
}

// pruneTx deletes up to limit of the oldest stored events while old says
// they are, raising their device's floor so that copies of them that come
// later are not stored again.
func pruneTx(tx *bolt.Tx, old func(recv time.Time) bool, limit int) (int, error) {
	events, seqs, devices, floors := tx.Bucket(bucketEvents), tx.Bucket(bucketSeqs), tx.Bucket(bucketDevices), tx.Bucket(bucketFloors)
	meta := tx.Bucket(bucketMeta)
	var gone [][]byte
	var reports []fleet.EventReport
	c := events.Cursor()
	for k, v := c.First(); k != nil && len(gone) < limit; k, v = c.Next() {
		if len(v) < 8 || !old(time.Unix(0, int64(u64(v[:8])))) {
			break
		}
		var r fleet.EventReport
		_ = json.Unmarshal(v[8:], &r) // written by add
		gone = append(gone, slices.Clone(k))
		reports = append(reports, r)
	}
	for i, k := range gone {
		r := reports[i]
		if err := events.Delete(k); err != nil {
			return 0, err
		}
		if err := devices.Delete(append(append([]byte(r.Device), 0), k...)); err != nil {
			return 0, err
		}
		if r.Seq != 0 {
			prefix := seqPrefix(r.Device, r.Epoch)
			if err := seqs.Delete(binary.BigEndian.AppendUint64(slices.Clone(prefix), r.Seq)); err != nil {
				return 0, err
			}
			if r.Seq > u64(floors.Get(prefix)) {
				if err := floors.Put(prefix, be(r.Seq)); err != nil {
					return 0, err
				}
			}
		}
	}
	if len(gone) > 0 {
		if err := meta.Put(keyCount, be(u64(meta.Get(keyCount))-uint64(len(gone)))); err != nil {
			return 0, err
		}
	}
	return len(gone), nil
}

// stats returns how many events are stored and the counts by kind, ever.
func (h *history) stats() (stored uint64, kinds map[string]uint64, err error) {
	kinds = map[string]uint64{}
	err = h.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		stored = u64(meta.Get(keyCount))
		c := meta.Cursor()
		for k, v := c.Seek([]byte("kind/")); k != nil && bytes.HasPrefix(k, []byte("kind/")); k, v = c.Next() {
			kinds[string(k[len("kind/"):])] = u64(v)
		}
		return nil
	})
	return stored, kinds, err
}

// DefaultLimit is how many events a query returns when it names no limit;
// MaxLimit is the most it may ask for.
const (
	DefaultLimit = 1000
	MaxLimit     = 100_000
)

// query returns the newest q.Limit events that match q, in stored order,
// and whether more matched.
func (h *history) query(q dashboard.EventQuery) (out []fleet.EventReport, more bool, err error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	match := func(r *fleet.EventReport) bool {
		if q.Device != "" && r.Device != q.Device {
			return false
		}
		if !q.Since.IsZero() && r.Time.Before(q.Since) {
			return false
		}
		if !q.Until.IsZero() && r.Time.After(q.Until) {
			return false
		}
		return len(q.Kinds) == 0 || slices.Contains(q.Kinds, string(r.Kind))
	}
	err = h.db.View(func(tx *bolt.Tx) error {
		events := tx.Bucket(bucketEvents)
		take := func(v []byte) (stop bool, err error) {
			if len(v) < 8 {
				return false, nil
			}
			var r fleet.EventReport
			if err := json.Unmarshal(v[8:], &r); err != nil {
				return false, err
			}
			if !match(&r) {
				return false, nil
			}
			if len(out) == limit {
				more = true
				return true, nil
			}
			out = append(out, r)
			return false, nil
		}
		if q.Device != "" {
			prefix := append([]byte(q.Device), 0)
			c := tx.Bucket(bucketDevices).Cursor()
			k, _ := c.Seek(append([]byte(q.Device), 1))
			if k == nil {
				k, _ = c.Last()
			} else {
				k, _ = c.Prev()
			}
			for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Prev() {
				if stop, err := take(events.Get(k[len(prefix):])); stop || err != nil {
					return err
				}
			}
			return nil
		}
		c := events.Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			if stop, err := take(v); stop || err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("exporter: read the event history: %w", err)
	}
	slices.Reverse(out)
	return out, more, nil
}
