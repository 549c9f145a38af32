package badgerstore

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-iot/tern/internal/testbound"
	"github.com/tern-iot/tern/runtime/store/internal/kv"
)

func skip32(t *testing.T) {
	t.Helper()
	if bits.UintSize == 32 {
		t.Skip("badgerstore refuses to open on 32-bit machines")
	}
}

// goroutines returns the stacks of every goroutine, each with the function
// that created it.
func goroutines() string {
	var b bytes.Buffer
	pprof.Lookup("goroutine").WriteTo(&b, 2)
	return b.String()
}

// An open store that nobody writes to runs no goroutine that wakes on a
// timer of its own: no Badger compactor (a 50 ms ticker each), no block
// cache (2.5 s); the store's compactor waits for writes. Badger's
// allocator pool (2 s) and its two one-minute tickers cannot be turned off
// (RATIONALE.md, "badgerstore: an idle store").
func TestIdleStoreRunsNoTickers(t *testing.T) {
	skip32(t)
	s, err := Open(t.TempDir(), DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	stacks := goroutines()
	for _, ticker := range []string{"badger/v4.(*levelsController).startCompact", "ristretto/v2.NewCache"} {
		if strings.Contains(stacks, "created by github.com/dgraph-io/"+ticker) {
			t.Errorf("an idle store runs goroutines made by %s, which wake on a timer:\n%s", ticker, stacks)
		}
	}
	const ours = "created by github.com/tern-iot/tern/runtime/store/internal/badgerstore.newCompactor"
	if !strings.Contains(stacks, ours) {
		t.Errorf("the store's compactor is not running:\n%s", stacks)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if stacks := goroutines(); strings.Contains(stacks, ours) {
		t.Errorf("the compactor outlived Close:\n%s", stacks)
	}
}

// streamOptions are DefaultOptions with a 1 MB memtable, so that a stream
// of a few hundred thousand small writes is flushed and compacted dozens
// of times, and without syncs, which this test is not about (the
// conformance suite's reopen cases are).
func streamOptions() Options {
	o := DefaultOptions()
	o.MemTableSize = 1 << 20
	o.ValueThreshold = 64 << 10
	o.ValueLogFileSize = 1 << 20
	o.SyncWrites = false
	return o
}

// tableBytes is the size of the store's table files.
func tableBytes(dir string) int64 {
	m, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	var n int64
	for _, f := range m {
		if fi, err := os.Stat(f); err == nil { // a compaction may have deleted it meanwhile
			n += fi.Size()
		}
	}
	return n
}

// dirBytes is the size of every file in dir.
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

// eventReport is an outbox record of about the size the agent writes.
func eventReport(seq int) []byte {
	return fmt.Appendf(nil, `{"epoch":"5f0c2a9e","seq":%d,"event":{"id":"%024x","time":"2025-01-01T00:00:00Z","kind":"task.done","target_version":1700000000000,"module":"relay","job":"set","path":"/relays/heater"}}`+"%0*d", seq, seq*7919, 64, seq)
}

func outboxKey(seq int) []byte { return fmt.Appendf(nil, "fleet/outbox/event/%016x", seq) }

// A long run of the agent's writes (the outbox appends an event report,
// records the broker's acknowledgement, deletes what was acknowledged;
// the state document changes now and then; offline spells pile reports
// up) keeps the store's files bounded: what the compactor reclaims keeps
// up with what is written.
func TestStreamOfWritesStaysBounded(t *testing.T) {
	skip32(t)
	t.Parallel()
	const events = 100_000 // with the acknowledgements, deletes and states: over 200,000 writes
	dir := t.TempDir()
	o := streamOptions()
	var compactions atomic.Int64
	o.onCompact = func(start bool) {
		if start {
			compactions.Add(1)
		}
	}
	s, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	// The bound: the live data (at most 5,000 reports of 300 bytes, 2 MB
	// with the table overhead), level 0 up to the stall (8 tables of 1 MB)
	// and one level's worth of tables being replaced by a compaction. The
	// stream writes over 60 MB.
	const bound = 16 << 20
	var (
		writes atomic.Int64
		acked  int
		peak   int64
	)
	stream := func() error {
		state := bytes.Repeat([]byte(`{"relays":{"heater":true,"fan":false}}`), 40) // 1.5 KB
		for seq := 1; seq <= events; seq++ {
			if err := s.Put(outboxKey(seq), eventReport(seq)); err != nil {
				return err
			}
			writes.Add(1)
			if seq%50 == 0 {
				state[10] = byte('a' + seq%26)
				if err := s.Put([]byte("state"), state); err != nil {
					return err
				}
				writes.Add(1)
			}
			// Online the broker acknowledges every 32 reports; every
			// 20,000 reports the device is offline for 5,000.
			if offline := seq%20_000 >= 15_000; offline || seq%32 != 0 {
				continue
			}
			if err := s.Put([]byte("fleet/outbox/acked"), strconv.AppendInt(nil, int64(seq), 10)); err != nil {
				return err
			}
			writes.Add(1)
			for ; acked < seq; acked++ {
				if err := s.Delete(outboxKey(acked + 1)); err != nil {
					return err
				}
				writes.Add(1)
			}
			if seq%4096 == 0 {
				peak = max(peak, tableBytes(dir))
			}
		}
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- stream() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testbound.Hang):
		// The store is left open: Close would wait for the stalled write.
		t.Fatalf("the writes stalled after %d: %d tables on level 0, where Badger stops writes at %d; nothing compacts", writes.Load(), tablesAt0(s.db), o.NumLevelZeroTablesStall)
	}
	if peak > bound {
		t.Errorf("the table files reached %d MB during the stream, more than the %d MB bound", peak>>20, bound>>20)
	}
	if compactions.Load() < 5 {
		t.Errorf("%d compactions during %d writes, want 5 or more: the bound proves nothing", compactions.Load(), writes.Load())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	total := dirBytes(t, dir)
	t.Logf("%d writes, %d compactions, table files at most %d KB, the closed store %d KB", writes.Load(), compactions.Load(), peak>>10, total>>10)
	if total > bound {
		t.Errorf("the closed store is %d MB, more than the %d MB bound", total>>20, bound>>20)
	}

	// What the stream left is all there.
	s, err = Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for seq := acked + 1; seq <= events; seq++ {
		v, err := s.Get(outboxKey(seq))
		if err != nil || !bytes.Equal(v, eventReport(seq)) {
			t.Fatalf("report %d after the stream: %q, %v", seq, v, err)
		}
	}
	if _, err := s.Get(outboxKey(acked)); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("acknowledged report %d after the stream: %v, want ErrNotFound", acked, err)
	}
}

// Values of ValueThreshold and more go to the value log (large Wasm
// modules). Replacing them again and again leaves garbage there, which
// compaction finds and the compactor's value-log GC takes back. (Only
// compaction finds it: a replaced value stays in the log until the
// memtable that replaced it was flushed and compacted.)
func TestValueLogGarbageIsCollected(t *testing.T) {
	skip32(t)
	t.Parallel()
	dir := t.TempDir()
	o := streamOptions()
	var compactions atomic.Int64
	o.onCompact = func(start bool) {
		if !start {
			compactions.Add(1)
		}
	}
	s, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	module := func(i int) []byte {
		return append(fmt.Appendf(nil, "module version %d;", i), bytes.Repeat([]byte{byte(i)}, 200<<10)...)
	}
	put := func(k, v []byte) {
		t.Helper()
		if err := s.Put(k, v); err != nil {
			t.Fatal(err)
		}
	}
	// Small writes fill memtables, so that compactions happen and find
	// the replaced modules.
	small := 0
	smallWrites := func(n int) {
		for range n {
			put(fmt.Appendf(nil, "state/%d", small%100), eventReport(small))
			small++
		}
	}
	const versions = 120 // 24 MB of modules under 2 keys
	for i := range versions {
		put(fmt.Appendf(nil, "module/%d/code", i%2), module(i))
		smallWrites(100)
	}
	// Until the last replacements were compacted too: their memtable
	// flushed, a compaction, and one more.
	for before := compactions.Load(); compactions.Load() < before+2; {
		if small > 1_000_000 { // 300 MB
			t.Fatalf("%d compactions after %d small writes", compactions.Load()-before, small)
		}
		smallWrites(100)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	vlogs, err := filepath.Glob(filepath.Join(dir, "*.vlog"))
	if err != nil {
		t.Fatal(err)
	}
	var size int64
	for _, f := range vlogs {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		size += fi.Size()
	}
	t.Logf("%d compactions; %d value-log files, %d KB, after writing %d MB of modules", compactions.Load(), len(vlogs), size>>10, versions*200>>10)
	// Live: two modules (400 KB); a file less than half garbage stays,
	// and so does the one being written.
	if size > 3<<20 {
		t.Errorf("the value log holds %d MB after writing %d MB of modules of which 400 KB live: garbage is not collected", size>>20, versions*200>>10)
	}
	s, err = Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	for k := range 2 {
		v, err := s.Get(fmt.Appendf(nil, "module/%d/code", k))
		if err != nil || !bytes.Equal(v, module(versions-2+k)) {
			t.Fatalf("module %d after GC: %d bytes, %v", k, len(v), err)
		}
	}
}

// A store written with the options of earlier versions (compressed
// tables, a block cache, Badger's compactors) opens with DefaultOptions,
// which have no block cache and so no compression, and reads back.
func TestOpensAStoreOfEarlierOptions(t *testing.T) {
	skip32(t)
	t.Parallel()
	dir := t.TempDir()
	old := DefaultOptions()
	old.BlockCacheSize, old.NumCompactors = 8<<20, 2
	old.MemTableSize, old.ValueThreshold = 1<<20, 64<<10
	old.SyncWrites = false
	s, err := Open(dir, old)
	if err != nil {
		t.Fatal(err)
	}
	const n = 10_000 // 3 MB: tables written compressed
	for seq := range n {
		if err := s.Put(outboxKey(seq), eventReport(seq)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if tableBytes(dir) == 0 {
		t.Fatal("no table files: the test proves nothing")
	}
	s, err = Open(dir, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for seq := range n {
		v, err := s.Get(outboxKey(seq))
		if err != nil || !bytes.Equal(v, eventReport(seq)) {
			t.Fatalf("report %d: %q, %v", seq, v, err)
		}
	}
}

// crashEnv names the store directory of the child process of
// TestCrashMidCompaction.
const crashEnv = "TERN_BADGERSTORE_CRASH_DIR"

// crashOptions are DefaultOptions with a 1 MB memtable compacted from
// three tables on level 0: a compaction every 1,500 writes or so.
func crashOptions() Options {
	o := DefaultOptions()
	o.MemTableSize = 1 << 20
	o.ValueThreshold = 64 << 10
	o.NumLevelZeroTables = 2
	return o
}

// crashValue is the value the crash child writes under seq: a state
// document's size, so that memtables fill fast.
func crashValue(seq int) []byte {
	return append(fmt.Appendf(nil, "%08d:", seq), bytes.Repeat([]byte{byte(seq)}, 2000)...)
}

// TestCrashChild is the child process of TestCrashMidCompaction: it writes
// reports and deletes older ones, synced, and says on stdout what returned
// ("put N", "del N") and when a compaction starts and ends, until killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("the child process of TestCrashMidCompaction")
	}
	first, _ := strconv.Atoi(os.Getenv(crashEnv + "_FIRST"))
	var mu sync.Mutex
	say := func(f string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(os.Stdout, f+"\n", a...)
	}
	o := crashOptions()
	o.onCompact = func(start bool) {
		if start {
			say("compacting")
		} else {
			say("compacted")
		}
	}
	s, err := Open(dir, o)
	if err != nil {
		say("error %v", err)
		return
	}
	for seq := first; ; seq++ {
		if err := s.Put(outboxKey(seq), crashValue(seq)); err != nil {
			say("error %v", err)
			return
		}
		say("put %d", seq)
		if seq%4 == 0 { // keep three of every four: the store grows
			if err := s.Delete(outboxKey(seq - 2)); err != nil {
				say("error %v", err)
				return
			}
			say("del %d", seq-2)
		}
	}
}

// A process killed while the store compacts loses nothing that a Put or
// Delete had returned: Badger writes a compaction's tables before the
// manifest names them, and deletes the old ones only after. The child
// process writes until a compaction starts, and is SIGKILLed at once or a
// few milliseconds later; the store is then checked, and the next child
// goes on writing in it.
func TestCrashMidCompaction(t *testing.T) {
	skip32(t)
	t.Parallel()
	if testing.Short() {
		t.Skip("writes several MB synced, in child processes")
	}
	dir := t.TempDir()
	put, del := map[int]bool{}, map[int]bool{}
	next, maybe := 0, -1
	midway := 0 // kills between "compacting" and "compacted"
	delays := []time.Duration{0, time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond}
	for round, delay := range delays {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir, crashEnv+"_FIRST="+strconv.Itoa(next))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		compacting, killed := false, false
		bound := time.NewTimer(testbound.Hang)
		for ended := false; !ended; {
			var line string
			select {
			case line, ended = <-lines:
				ended = !ended
			case <-bound.C:
				cmd.Process.Kill()
				t.Fatalf("round %d: no compaction started within %v", round, testbound.Hang)
			}
			switch f := strings.Fields(line); {
			case len(f) == 2 && f[0] == "put":
				seq, _ := strconv.Atoi(f[1])
				put[seq] = true
				next = max(next, seq+1)
				if seq%4 == 0 {
					maybe = seq - 2 // the child deletes it next
				}
			case len(f) == 2 && f[0] == "del":
				seq, _ := strconv.Atoi(f[1])
				del[seq] = true
				maybe = -1
			case line == "compacting" && !killed:
				compacting = true
				go func() {
					time.Sleep(delay)
					cmd.Process.Kill()
				}()
				killed = true
			case line == "compacted":
				compacting = false
			case strings.HasPrefix(line, "error"):
				t.Fatalf("round %d: the child failed: %s", round, line)
			}
		}
		bound.Stop()
		cmd.Wait()
		if !killed {
			t.Fatalf("round %d: the child ended before a compaction started", round)
		}
		if compacting {
			midway++
		}

		// Everything the child was told was written is there; what it
		// was told was deleted is not. Opening the store also finishes
		// the interrupted compaction's clean-up.
		s, err := Open(dir, crashOptions())
		if err != nil {
			t.Fatalf("round %d: reopening after the kill: %v", round, err)
		}
		lost, back := 0, 0
		for seq := range put {
			v, err := s.Get(outboxKey(seq))
			switch {
			case seq == maybe: // killed between the delete and its line: either
				if errors.Is(err, kv.ErrNotFound) {
					del[seq] = true
				} else if err != nil || !bytes.Equal(v, crashValue(seq)) {
					lost++
				}
			case del[seq]:
				if !errors.Is(err, kv.ErrNotFound) {
					back++
				}
			case err != nil || !bytes.Equal(v, crashValue(seq)):
				lost++
			}
		}
		maybe = -1 // settled: no later child deletes it
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if lost > 0 || back > 0 {
			t.Fatalf("round %d (killed %v after a compaction started): %d of %d written reports lost, %d of %d deleted ones back", round, delay, lost, len(put), back, len(del))
		}
	}
	t.Logf("%d reports written, %d deleted, %d of %d kills between a compaction's start and end", len(put), len(del), midway, len(delays))
	if midway == 0 {
		t.Errorf("no kill came while a compaction ran: the test proves nothing")
	}
}
