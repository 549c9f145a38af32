package fleet

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"
)

func appendN(t *testing.T, o *outbox, n int) {
	t.Helper()
	for range n {
		if err := o.append(func(_ string, seq uint64) ([]byte, error) { return fmt.Appendf(nil, "report %d", seq), nil }); err != nil {
			t.Fatal(err)
		}
	}
}

func seqs(t *testing.T, o *outbox, after uint64) []uint64 {
	t.Helper()
	rs, err := o.read(after, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, r := range rs {
		if string(r.payload) != fmt.Sprintf("report %d", r.seq) {
			t.Errorf("report %d holds %q", r.seq, r.payload)
		}
		out = append(out, r.seq)
	}
	return out
}

// A crash between recording an acknowledgement and deleting the reports
// it covers leaves them in the store: the next open deletes them, and
// numbering goes on after the highest ever used.
func TestOutboxOpenAfterCrashBetweenAckAndDelete(t *testing.T) {
	dir := t.TempDir()
	st := testStore(t, dir)
	o, err := openOutbox(st, 100, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, o, 8)
	// The mark says 5, but reports 1..5 are still there: the crash.
	if err := st.Put(outboxAcked, []byte("5")); err != nil {
		t.Fatal(err)
	}
	o, err = openOutbox(st, 100, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(seqs(t, o, 0)); got != "[6 7 8]" {
		t.Fatalf("after reopening: reports %s, want [6 7 8]", got)
	}
	if acked, pending := o.position(); acked != 5 || pending != 3 {
		t.Errorf("position: %d acknowledged, %d pending; want 5, 3", acked, pending)
	}
	appendN(t, o, 1)
	if got := fmt.Sprint(seqs(t, o, 5)); got != "[6 7 8 9]" {
		t.Errorf("after one more: %s, want [6 7 8 9]", got)
	}
}

// Once everything was acknowledged, nothing is left to scan, and still a
// reopened outbox does not number from 1 again: consumers would drop the
// new reports as repeats.
func TestOutboxNumberingSurvivesEmptyOutbox(t *testing.T) {
	dir := t.TempDir()
	st := testStore(t, dir)
	o, err := openOutbox(st, 100, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, o, 3)
	if err := o.ack(3); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	swept := make(chan struct{})
	go func() { o.sweep(ctx); close(swept) }()
	stored := func() (n int) {
		if err := st.Scan(outboxEvents, func(_, _ []byte) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for deadline := time.Now().Add(10 * time.Second); stored() != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d acknowledged reports still stored after 10s", stored())
		}
	}
	cancel()
	<-swept
	o, err = openOutbox(st, 100, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, o, 1)
	if got := fmt.Sprint(seqs(t, o, 0)); got != "[4]" {
		t.Errorf("first report after reopening: %s, want [4]", got)
	}
}

func TestOutboxAckIsMonotonic(t *testing.T) {
	o, err := openOutbox(testStore(t, t.TempDir()), 100, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, o, 5)
	for _, s := range []uint64{3, 2, 3} {
		if err := o.ack(s); err != nil {
			t.Fatal(err)
		}
	}
	if got := fmt.Sprint(seqs(t, o, 0)); got != "[4 5]" {
		t.Errorf("after acks 3, 2, 3: %s, want [4 5]", got)
	}
}

func TestOutboxRefusesCorruptMark(t *testing.T) {
	st := testStore(t, t.TempDir())
	if err := st.Put(outboxAcked, []byte("five")); err != nil {
		t.Fatal(err)
	}
	if _, err := openOutbox(st, 100, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("opened an outbox whose mark is not a number")
	}
}

// The epoch names a store's numbering: it stays across reopening, and a
// new (wiped) store gets another, so that consumers do not take its
// reports, numbered from 1 again, for copies.
func TestOutboxEpoch(t *testing.T) {
	st := testStore(t, t.TempDir())
	o, err := openOutbox(st, 100, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	first := o.epoch
	if len(first) != 16 {
		t.Fatalf("epoch %q: want 16 hex digits", first)
	}
	var got string
	if err := o.append(func(epoch string, _ uint64) ([]byte, error) { got = epoch; return []byte("r"), nil }); err != nil {
		t.Fatal(err)
	}
	if got != first {
		t.Errorf("report encoded with epoch %q, outbox has %q", got, first)
	}
	if o, err = openOutbox(st, 100, slog.New(slog.DiscardHandler)); err != nil || o.epoch != first {
		t.Errorf("reopened: epoch %q, %v; want %q", o.epoch, err, first)
	}
	wiped, err := openOutbox(testStore(t, t.TempDir()), 100, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if wiped.epoch == first || wiped.epoch == "" {
		t.Errorf("a new store has epoch %q, the old one had %q", wiped.epoch, first)
	}
}

// A lowered limit takes effect at the next report: the outbox drops down
// to it at once, and counts every report it dropped.
func TestOutboxLoweredLimit(t *testing.T) {
	st := testStore(t, t.TempDir())
	o, err := openOutbox(st, 10, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, o, 10)
	if o, err = openOutbox(st, 3, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	appendN(t, o, 1)
	if acked, pending := o.position(); acked != 8 || pending != 3 {
		t.Errorf("after one report under limit 3: acknowledged mark %d, %d pending; want 8 and 3", acked, pending)
	}
	if n := o.droppedCount(); n != 8 {
		t.Errorf("dropped %d, want 8", n)
	}
	if err := o.toldDropped(8); err != nil {
		t.Fatal(err)
	}
	if o, err = openOutbox(st, 3, slog.New(slog.DiscardHandler)); err != nil || o.droppedCount() != 0 {
		t.Errorf("after telling: reopened with %d dropped (%v), want 0", o.droppedCount(), err)
	}
}
