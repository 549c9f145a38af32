package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tern-iot/tern/runtime/store"
)

// Sizes of the many-keys case: 20,200 values of about 1 KB, about 21 MB in
// all, well over the 8 MB memtable of badgerstore.DefaultOptions, so the
// data must be flushed to table files before the store is reopened.
const (
	ManyKeys      = 20200
	ManyValueSize = 1000
)

// Suite is the conformance suite with the hooks a backend may need.
type Suite struct {
	// Open opens (or reopens) the store in dir; it is called again with the
	// same dir after Close to check persistence. It fails t on error.
	Open func(t *testing.T, dir string) store.Store

	// AfterManyKeys, if not nil, is called in the many-keys case with the
	// store's directory after the store was closed and before it is
	// reopened. A backend checks there that the data really left memory,
	// so that the case cannot pass vacuously.
	AfterManyKeys func(t *testing.T, dir string)
}

// Conformance runs the suite against the stores that open returns.
func Conformance(t *testing.T, open func(t *testing.T, dir string) store.Store) {
	t.Helper()
	Suite{Open: open}.Run(t)
}

// Run runs every case of the suite as a subtest of t.
func (s Suite) Run(t *testing.T) {
	t.Helper()
	cases := []struct {
		name string
		fn   func(t *testing.T, s Suite)
	}{
		{"PutGet", testPutGet},
		{"NotFound", testNotFound},
		{"Overwrite", testOverwrite},
		{"Delete", testDelete},
		{"EmptyKey", testEmptyKey},
		{"EmptyValue", testEmptyValue},
		{"SlicesAreNotShared", testSlicesAreNotShared},
		{"BinaryKeysAndValues", testBinary},
		{"LargeValues", testLargeValues},
		{"ScanOrder", testScanOrder},
		{"ScanPrefixBounds", testScanPrefixBounds},
		{"ScanEarlyStop", testScanEarlyStop},
		{"ScanWritesFromCallback", testScanWritesFromCallback},
		{"Closed", testClosed},
		{"Reopen", testReopen},
		{"ManyKeysSurviveReopen", testManyKeys},
		{"Hammer", testHammer},
		{"CloseWhileBusy", testCloseWhileBusy},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, s) })
	}
}

// open opens a store in a new directory and closes it when the test ends,
// unless the test closed it itself.
func (s Suite) open(t *testing.T) (store.Store, string) {
	t.Helper()
	dir := t.TempDir()
	st := s.Open(t, dir)
	t.Cleanup(func() { st.Close() })
	return st, dir
}

func mustPut(t *testing.T, st store.Store, key, value string) {
	t.Helper()
	if err := st.Put([]byte(key), []byte(value)); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func wantValue(t *testing.T, st store.Store, key, want string) {
	t.Helper()
	got, err := st.Get([]byte(key))
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if string(got) != want {
		t.Fatalf("Get(%q) = %q, want %q", key, short(got), short([]byte(want)))
	}
}

func wantNotFound(t *testing.T, st store.Store, key string) {
	t.Helper()
	got, err := st.Get([]byte(key))
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(%q) = %q, %v; want ErrNotFound", key, short(got), err)
	}
}

// scanAll returns copies of the keys and values under prefix, in the order
// Scan gave them.
func scanAll(t *testing.T, st store.Store, prefix string) (keys, values []string) {
	t.Helper()
	err := st.Scan([]byte(prefix), func(k, v []byte) error {
		keys = append(keys, string(k))
		values = append(values, string(v))
		return nil
	})
	if err != nil {
		t.Fatalf("Scan(%q): %v", prefix, err)
	}
	return keys, values
}

func short(b []byte) string {
	if len(b) > 40 {
		return fmt.Sprintf("%q... (%d bytes)", b[:40], len(b))
	}
	return string(b)
}

func testPutGet(t *testing.T, s Suite) {
	st, _ := s.open(t)
	mustPut(t, st, "target", `{"relays":{"fan":true}}`)
	mustPut(t, st, "target/version", "42")
	wantValue(t, st, "target", `{"relays":{"fan":true}}`)
	wantValue(t, st, "target/version", "42")
}

func testNotFound(t *testing.T, s Suite) {
	st, _ := s.open(t)
	wantNotFound(t, st, "nothing")
	mustPut(t, st, "a", "1")
	wantNotFound(t, st, "b")
	wantNotFound(t, st, "a/") // a longer key is another key
	wantNotFound(t, st, "A")
}

func testOverwrite(t *testing.T, s Suite) {
	st, _ := s.open(t)
	mustPut(t, st, "k", "first, and longer than the second")
	mustPut(t, st, "k", "second")
	wantValue(t, st, "k", "second")
	keys, _ := scanAll(t, st, "")
	if !slices.Equal(keys, []string{"k"}) {
		t.Fatalf("after overwrite, Scan gave keys %q, want [k]", keys)
	}
}

func testDelete(t *testing.T, s Suite) {
	st, _ := s.open(t)
	mustPut(t, st, "a", "1")
	mustPut(t, st, "b", "2")
	if err := st.Delete([]byte("a")); err != nil {
		t.Fatalf("Delete(a): %v", err)
	}
	wantNotFound(t, st, "a")
	wantValue(t, st, "b", "2")
	if err := st.Delete([]byte("a")); err != nil {
		t.Fatalf("Delete(a) again: %v, want nil", err)
	}
	if err := st.Delete([]byte("never-stored")); err != nil {
		t.Fatalf("Delete of an absent key: %v, want nil", err)
	}
	keys, _ := scanAll(t, st, "")
	if !slices.Equal(keys, []string{"b"}) {
		t.Fatalf("after delete, Scan gave keys %q, want [b]", keys)
	}
	mustPut(t, st, "a", "again")
	wantValue(t, st, "a", "again")
}

func testEmptyKey(t *testing.T, s Suite) {
	st, _ := s.open(t)
	for _, key := range [][]byte{nil, {}} {
		if _, err := st.Get(key); !errors.Is(err, store.ErrEmptyKey) {
			t.Errorf("Get(%#v): %v, want ErrEmptyKey", key, err)
		}
		if err := st.Put(key, []byte("v")); !errors.Is(err, store.ErrEmptyKey) {
			t.Errorf("Put(%#v): %v, want ErrEmptyKey", key, err)
		}
		if err := st.Delete(key); !errors.Is(err, store.ErrEmptyKey) {
			t.Errorf("Delete(%#v): %v, want ErrEmptyKey", key, err)
		}
	}
	keys, _ := scanAll(t, st, "")
	if len(keys) != 0 {
		t.Fatalf("a refused Put stored keys %q", keys)
	}
}

func testEmptyValue(t *testing.T, s Suite) {
	st, _ := s.open(t)
	for _, value := range [][]byte{nil, {}} {
		if err := st.Put([]byte("empty"), value); err != nil {
			t.Fatalf("Put(empty, %#v): %v", value, err)
		}
		got, err := st.Get([]byte("empty"))
		if err != nil || len(got) != 0 {
			t.Fatalf("Get(empty) = %q, %v; want an empty value and no error", got, err)
		}
	}
	keys, values := scanAll(t, st, "")
	if !slices.Equal(keys, []string{"empty"}) || values[0] != "" {
		t.Fatalf("Scan gave %q = %q, want [empty] = [\"\"]", keys, values)
	}
}

func testSlicesAreNotShared(t *testing.T, s Suite) {
	st, _ := s.open(t)
	key, value := []byte("key"), []byte("value")
	if err := st.Put(key, value); err != nil {
		t.Fatal(err)
	}
	// The store must not keep the caller's slices...
	copy(key, "XXX")
	copy(value, "XXXXX")
	wantValue(t, st, "key", "value")
	// ...and the slice Get returns is the caller's.
	got, err := st.Get([]byte("key"))
	if err != nil {
		t.Fatal(err)
	}
	copy(got, "12345")
	wantValue(t, st, "key", "value")
}

func testBinary(t *testing.T, s Suite) {
	st, _ := s.open(t)
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	pairs := map[string][]byte{
		"\x00":             {0},
		"\x00\x00":         {0, 0, 0},
		"\xff":             {0xff},
		"\xff\xff\xff\xff": all,
		"bin/\x00/\xff":    append(slices.Clone(all), all...),
		"bin/\x01":         {0xff, 0x00, 0xff},
		"utf8/ünïcødé":     []byte("✓"),
	}
	for k, v := range pairs {
		if err := st.Put([]byte(k), v); err != nil {
			t.Fatalf("Put(%q): %v", k, err)
		}
	}
	for k, v := range pairs {
		got, err := st.Get([]byte(k))
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("Get(%q) = %x, %v; want %x", k, got, err, v)
		}
	}
	keys, values := scanAll(t, st, "")
	want := slices.Sorted(func(yield func(string) bool) {
		for k := range pairs {
			if !yield(k) {
				return
			}
		}
	})
	if !slices.Equal(keys, want) {
		t.Fatalf("Scan order %q, want %q", keys, want)
	}
	for i, k := range keys {
		if values[i] != string(pairs[k]) {
			t.Fatalf("Scan value of %q = %x, want %x", k, values[i], pairs[k])
		}
	}
}

// pattern returns n bytes that depend on seed, so that a value read back
// can be checked byte for byte.
func pattern(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n+7)
	for i := 0; i < n; i += 8 {
		u := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(u >> (8 * j))
		}
	}
	return b[:n]
}

func testLargeValues(t *testing.T, s Suite) {
	st, dir := s.open(t)
	// Sizes around the usual thresholds (Badger's value log takes values of
	// 1 MiB and up) and a Wasm module of a few MB.
	sizes := map[string]int{
		"modules/small": 64 << 10,
		"modules/1MiB-": 1<<20 - 1,
		"modules/1MiB":  1 << 20,
		"modules/big":   5<<20 + 3,
	}
	for k, n := range sizes {
		if err := st.Put([]byte(k), pattern(uint64(n), n)); err != nil {
			t.Fatalf("Put(%q, %d bytes): %v", k, n, err)
		}
	}
	check := func(st store.Store) {
		t.Helper()
		for k, n := range sizes {
			got, err := st.Get([]byte(k))
			if err != nil {
				t.Fatalf("Get(%q): %v", k, err)
			}
			if !bytes.Equal(got, pattern(uint64(n), n)) {
				t.Fatalf("Get(%q): %d bytes differ from the %d stored", k, len(got), n)
			}
		}
		seen := 0
		err := st.Scan([]byte("modules/"), func(k, v []byte) error {
			seen++
			if n := sizes[string(k)]; !bytes.Equal(v, pattern(uint64(n), n)) {
				return fmt.Errorf("value of %q: %d bytes differ from the %d stored", k, len(v), n)
			}
			return nil
		})
		if err != nil || seen != len(sizes) {
			t.Fatalf("Scan(modules/) saw %d of %d values: %v", seen, len(sizes), err)
		}
	}
	check(st)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = s.Open(t, dir)
	defer st.Close()
	check(st)
}

func testScanOrder(t *testing.T, s Suite) {
	st, _ := s.open(t)
	var want []string
	for i := range 300 {
		want = append(want, fmt.Sprintf("k/%05d", i*7))
	}
	// Lexical order is not numeric order: "k/10" sorts before "k/9".
	want = append(want, "k/9", "k/10", "k", "k/", "k0", "j", "l")
	r := rand.New(rand.NewPCG(1, 2))
	shuffled := slices.Clone(want)
	r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for _, k := range shuffled {
		mustPut(t, st, k, "v:"+k)
	}
	slices.Sort(want)
	keys, values := scanAll(t, st, "")
	if !slices.Equal(keys, want) {
		t.Fatalf("Scan(\"\") is not in ascending order:\ngot  %q\nwant %q", keys, want)
	}
	for i, k := range keys {
		if values[i] != "v:"+k {
			t.Fatalf("Scan value of %q = %q, want %q", k, values[i], "v:"+k)
		}
	}
}

func testScanPrefixBounds(t *testing.T, s Suite) {
	st, _ := s.open(t)
	for _, k := range []string{
		"a", "a/", "a/1", "a/2", "a/\xff\xff", "a0", "a\xff", "a.", "b", "`",
		"\xfe", "\xff", "\xff\x00", "\xff\xff", "\x00", "\x00\x01",
	} {
		mustPut(t, st, k, k)
	}
	for _, c := range []struct {
		prefix string
		want   []string
	}{
		{"a/", []string{"a/", "a/1", "a/2", "a/\xff\xff"}},
		{"a", []string{"a", "a.", "a/", "a/1", "a/2", "a/\xff\xff", "a0", "a\xff"}},
		{"a/1", []string{"a/1"}},
		{"a/3", nil},
		{"a/11", nil},
		{"c", nil},
		{"\xff", []string{"\xff", "\xff\x00", "\xff\xff"}},
		{"\xff\xff", []string{"\xff\xff"}},
		{"\xff\xff\xff", nil},
		{"\x00", []string{"\x00", "\x00\x01"}},
	} {
		keys, _ := scanAll(t, st, c.prefix)
		if !slices.Equal(keys, c.want) {
			t.Errorf("Scan(%q) = %q, want %q", c.prefix, keys, c.want)
		}
	}
	all, _ := scanAll(t, st, "")
	nilAll, _ := func() ([]string, []string) {
		var keys []string
		err := st.Scan(nil, func(k, _ []byte) error { keys = append(keys, string(k)); return nil })
		if err != nil {
			t.Fatal(err)
		}
		return keys, nil
	}()
	if len(all) != 16 || !slices.Equal(all, nilAll) {
		t.Errorf("Scan(\"\") = %q and Scan(nil) = %q, want all 16 keys both times", all, nilAll)
	}
}

func testScanEarlyStop(t *testing.T, s Suite) {
	st, _ := s.open(t)
	for i := range 10 {
		mustPut(t, st, fmt.Sprintf("q/%d", i), "x")
	}
	stop := errors.New("enough")
	var seen []string
	err := st.Scan([]byte("q/"), func(k, _ []byte) error {
		seen = append(seen, string(k))
		if len(seen) == 3 {
			return stop
		}
		return nil
	})
	if err != stop {
		t.Fatalf("Scan returned %v, want the callback's error unchanged", err)
	}
	if !slices.Equal(seen, []string{"q/0", "q/1", "q/2"}) {
		t.Fatalf("Scan went on after the callback's error: saw %q", seen)
	}
	// The store is still usable after a stopped scan.
	mustPut(t, st, "after", "ok")
	wantValue(t, st, "after", "ok")
}

// testScanWritesFromCallback drains an outbox the way the agent does:
// send each record and delete it from inside the scan.
func testScanWritesFromCallback(t *testing.T, s Suite) {
	st, _ := s.open(t)
	const n = 50
	for i := range n {
		mustPut(t, st, fmt.Sprintf("outbox/%04d", i), fmt.Sprintf("report %d", i))
	}
	var sent []string
	err := st.Scan([]byte("outbox/"), func(k, v []byte) error {
		sent = append(sent, string(v))
		if _, err := st.Get(k); err != nil {
			return fmt.Errorf("Get(%q) inside Scan: %w", k, err)
		}
		if err := st.Put([]byte("acked/"+string(k[len("outbox/"):])), v); err != nil {
			return fmt.Errorf("Put inside Scan: %w", err)
		}
		return st.Delete(k)
	})
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	if len(sent) != n {
		t.Fatalf("Scan visited %d records, want each of the %d once", len(sent), n)
	}
	for i, v := range sent {
		if want := fmt.Sprintf("report %d", i); v != want {
			t.Fatalf("record %d = %q, want %q", i, v, want)
		}
	}
	if keys, _ := scanAll(t, st, "outbox/"); len(keys) != 0 {
		t.Fatalf("outbox not empty after the drain: %q", keys)
	}
	if keys, _ := scanAll(t, st, "acked/"); len(keys) != n {
		t.Fatalf("%d acked records, want %d", len(keys), n)
	}
}

func testClosed(t *testing.T, s Suite) {
	st := s.Open(t, t.TempDir())
	mustPut(t, st, "k", "v")
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := st.Get([]byte("k")); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Get after Close: %v, want ErrClosed", err)
	}
	if err := st.Put([]byte("k"), []byte("v")); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Put after Close: %v, want ErrClosed", err)
	}
	if err := st.Delete([]byte("k")); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Delete after Close: %v, want ErrClosed", err)
	}
	called := false
	err := st.Scan(nil, func(_, _ []byte) error { called = true; return nil })
	if !errors.Is(err, store.ErrClosed) || called {
		t.Errorf("Scan after Close: %v (callback called: %v), want ErrClosed", err, called)
	}
	if err := st.Close(); !errors.Is(err, store.ErrClosed) {
		t.Errorf("second Close: %v, want ErrClosed", err)
	}
}

func testReopen(t *testing.T, s Suite) {
	dir := t.TempDir()
	st := s.Open(t, dir)
	mustPut(t, st, "target", "v1")
	mustPut(t, st, "target", "v2")
	mustPut(t, st, "state", "ok")
	mustPut(t, st, "gone", "soon")
	if err := st.Delete([]byte("gone")); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for round := range 2 {
		st = s.Open(t, dir)
		wantValue(t, st, "target", "v2")
		wantValue(t, st, "state", "ok")
		wantNotFound(t, st, "gone")
		keys, _ := scanAll(t, st, "")
		if !slices.Equal(keys, []string{"state", "target"}) {
			t.Fatalf("round %d: after reopen Scan gave %q, want [state target]", round, keys)
		}
		if err := st.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
}

func manyKey(i int) []byte { return fmt.Appendf(nil, "many/%08d", i) }

func testManyKeys(t *testing.T, s Suite) {
	dir := t.TempDir()
	st := s.Open(t, dir)

	// Write in a shuffled order from several goroutines, as an agent's
	// tasks would; stores that batch concurrent commits get faster.
	order := rand.New(rand.NewPCG(3, 4)).Perm(ManyKeys)
	const writers = 16
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for j := w; j < len(order); j += writers {
				i := order[j]
				if err := st.Put(manyKey(i), pattern(uint64(i), ManyValueSize)); err != nil {
					errs <- fmt.Errorf("Put(%s): %w", manyKey(i), err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// A few deletes, which must survive too.
	for i := 0; i < ManyKeys; i += 1000 {
		if err := st.Delete(manyKey(i)); err != nil {
			t.Fatalf("Delete(%s): %v", manyKey(i), err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if s.AfterManyKeys != nil {
		s.AfterManyKeys(t, dir)
	}

	st = s.Open(t, dir)
	defer st.Close()
	deleted := func(i int) bool { return i%1000 == 0 }
	missing, wrong := 0, 0
	for i := range ManyKeys {
		got, err := st.Get(manyKey(i))
		switch {
		case deleted(i):
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Get(%s) of a deleted key after reopen: %v, want ErrNotFound", manyKey(i), err)
			}
		case errors.Is(err, store.ErrNotFound):
			missing++
		case err != nil:
			t.Fatalf("Get(%s) after reopen: %v", manyKey(i), err)
		case !bytes.Equal(got, pattern(uint64(i), ManyValueSize)):
			wrong++
		}
	}
	if missing > 0 || wrong > 0 {
		t.Fatalf("after close and reopen, %d of %d keys are missing and %d have wrong values", missing, ManyKeys, wrong)
	}
	next := 0
	err := st.Scan([]byte("many/"), func(k, v []byte) error {
		for deleted(next) {
			next++
		}
		if !bytes.Equal(k, manyKey(next)) {
			return fmt.Errorf("Scan gave %s, want %s", k, manyKey(next))
		}
		if !bytes.Equal(v, pattern(uint64(next), ManyValueSize)) {
			return fmt.Errorf("Scan value of %s differs from the stored one", k)
		}
		next++
		return nil
	})
	if err != nil {
		t.Fatalf("Scan after reopen: %v", err)
	}
	if next != ManyKeys {
		t.Fatalf("Scan after reopen stopped at key %d of %d", next, ManyKeys)
	}
}

// testHammer runs writers, readers and scanners at once, for -race and for
// the consistency of what each goroutine reads back.
func testHammer(t *testing.T, s Suite) {
	st, _ := s.open(t)
	const (
		workers = 6
		rounds  = 150
	)
	mustPut(t, st, "shared", "0")
	var wg sync.WaitGroup
	errs := make(chan error, workers*2)
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				own := fmt.Appendf(nil, "hammer/%d/%03d", w, i)
				value := fmt.Appendf(nil, "%d:%d", w, i)
				if err := st.Put(own, value); err != nil {
					errs <- err
					return
				}
				got, err := st.Get(own)
				if err != nil || !bytes.Equal(got, value) {
					errs <- fmt.Errorf("worker %d read back %q, %v; want %q", w, got, err, value)
					return
				}
				if err := st.Put([]byte("shared"), value); err != nil {
					errs <- err
					return
				}
				if _, err := st.Get([]byte("shared")); err != nil {
					errs <- err
					return
				}
				if i%10 == 0 {
					prefix := fmt.Appendf(nil, "hammer/%d/", w)
					n := 0
					err := st.Scan(prefix, func(k, v []byte) error {
						n++
						if !bytes.HasPrefix(k, prefix) {
							return fmt.Errorf("Scan(%s) gave %s", prefix, k)
						}
						return nil
					})
					if err != nil {
						errs <- err
						return
					}
					// Only this worker writes under its prefix, and it deletes
					// every other key it wrote: it knows the count.
					if want := i/2 + 1; n != want {
						errs <- fmt.Errorf("worker %d: Scan saw %d keys, want %d", w, n, want)
						return
					}
				}
				if i%2 == 1 {
					if err := st.Delete(own); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	// A reader that scans everything while the writers run.
	done := make(chan struct{})
	var scans sync.WaitGroup
	scans.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			var last []byte
			err := st.Scan(nil, func(k, _ []byte) error {
				if last != nil && bytes.Compare(last, k) >= 0 {
					return fmt.Errorf("Scan out of order: %q then %q", last, k)
				}
				last = append(last[:0], k...)
				return nil
			})
			if err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(done)
	scans.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	keys, _ := scanAll(t, st, "hammer/")
	if want := workers * (rounds / 2); len(keys) != want {
		t.Fatalf("%d keys left, want %d", len(keys), want)
	}
}

// testCloseWhileBusy closes the store while goroutines use it: every call
// must either succeed or fail with ErrClosed, and Close must not hang.
func testCloseWhileBusy(t *testing.T, s Suite) {
	st := s.Open(t, t.TempDir())
	mustPut(t, st, "busy/seed", "x")
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	started := make(chan struct{}, 4)
	for w := range 4 {
		wg.Go(func() {
			signaled := false
			signal := func() {
				if !signaled {
					signaled = true
					started <- struct{}{}
				}
			}
			defer signal()
			key := fmt.Appendf(nil, "busy/%d", w)
			for i := 0; ; i++ {
				var err error
				switch i % 4 {
				case 0:
					err = st.Put(key, key)
				case 1:
					_, err = st.Get(key)
				case 2:
					err = st.Scan([]byte("busy/"), func(k, _ []byte) error {
						// A write from inside a scan while Close waits must
						// not deadlock.
						return st.Put(key, key)
					})
				case 3:
					err = st.Delete(key)
				}
				if i == 4 {
					signal()
				}
				if errors.Is(err, store.ErrClosed) {
					return
				}
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					errs <- fmt.Errorf("worker %d, op %d: %w", w, i%4, err)
					return
				}
			}
		})
	}
	for range 4 {
		<-started
	}
	closed := make(chan error, 1)
	go func() { closed <- st.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return within 30s while the store was busy")
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
