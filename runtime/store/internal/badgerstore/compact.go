package badgerstore

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// compactor compacts a Badger database whose own compactors are off
// (Options.NumCompactors 0), when writes have made it necessary, and never
// otherwise.
//
// Badger's compactors each wake every 50 ms for the life of the database,
// written to or not: on an idle agent they were 230 of its 240 wake-ups a
// second. Here Put and Delete count roughly what they add to the memtable;
// every quarter of a memtable they wake the compactor, which compacts
// once level 0 holds more than Options.NumLevelZeroTables tables (a full
// memtable becomes one). Level 0 is therefore looked at four times or
// more per table flushed to it, and compacted long before it reaches
// NumLevelZeroTablesStall, where Badger would stop every write. ("More
// than": Flatten leaves level 0 alone while it is the only level with
// data and holds no more tables than that.)
//
// A compaction is DB.Flatten: Badger's own compaction code, run from here,
// that merges every level into the last one. That is the right shape for
// this store: its data is small (tens of MB), and the outbox deletes
// almost everything it writes, whose tombstones go only once they reach
// the last level. After compacting, the compactor rewrites the value-log
// files that the compaction found to be half garbage or more (values of
// ValueThreshold and more live there: large Wasm modules).
//
// A compaction that fails is tried again after 1 s, doubling up to 1 min:
// the writes stalled behind a full level 0, if any, cannot bring the next
// wake-up. That timer is armed only while compaction fails.
type compactor struct {
	db        *badger.DB
	level0    int   // compact at more tables than this on level 0
	every     int64 // wake after about this many bytes written
	log       *slog.Logger
	onCompact func(start bool) // tests: called as a compaction starts and ends
	writes    *sync.RWMutex    // the store's: held while the value-log GC runs

	written atomic.Int64  // bytes written since the last wake-up
	due     chan struct{} // a wake-up, coalesced
	stop    chan struct{} // closed by close
	done    chan struct{} // closed when run returns
}

// entryCost is added to each write's key and value in the estimate of what
// it adds to a memtable: the skiplist node, the version and the entry's
// header in the write-ahead log. Too high only wakes the compactor more
// often.
const entryCost = 64

func newCompactor(db *badger.DB, writes *sync.RWMutex, o Options) *compactor {
	c := &compactor{
		db:        db,
		writes:    writes,
		level0:    max(o.NumLevelZeroTables, 1),
		every:     max(o.MemTableSize/4, 1),
		log:       o.Logger,
		onCompact: o.onCompact,
		due:       make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	c.due <- struct{}{} // look once at what the last run left
	go c.run()
	return c
}

// wrote counts a write of n bytes of key and value. It does nothing on a
// nil compactor (Badger's compactors run).
func (c *compactor) wrote(n int) {
	if c == nil {
		return
	}
	if c.written.Add(int64(n+entryCost)) < c.every {
		return
	}
	c.written.Store(0)
	select {
	case c.due <- struct{}{}:
	default:
	}
}

// close stops the compactor, waiting for a compaction under way.
func (c *compactor) close() {
	if c == nil {
		return
	}
	close(c.stop)
	<-c.done
}

func (c *compactor) run() {
	defer close(c.done)
	var (
		retry   *time.Timer
		retryC  <-chan time.Time
		backoff time.Duration
	)
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		select {
		case <-c.stop:
			return
		case <-c.due:
		case <-retryC:
		}
		err := c.compact()
		if err == nil {
			backoff, retryC = 0, nil
			if retry != nil {
				retry.Stop()
			}
			continue
		}
		backoff = min(max(2*backoff, time.Second), time.Minute)
		if c.log != nil {
			c.log.Error("badgerstore: compaction failed; trying again", "err", err, "retry_in", backoff)
		}
		if retry == nil {
			retry = time.NewTimer(backoff)
		} else {
			retry.Reset(backoff)
		}
		retryC = retry.C
	}
}

// compact compacts if level 0 is due, then collects value-log garbage.
func (c *compactor) compact() error {
	if tablesAt0(c.db) <= c.level0 {
		return nil
	}
	if c.onCompact != nil {
		c.onCompact(true)
		defer c.onCompact(false)
	}
	if err := c.db.Flatten(1); err != nil {
		return fmt.Errorf("badgerstore: compact: %w", err)
	}
	// Each round rewrites the file with the most garbage, if half of it
	// or more is, and deletes it; the file being written is never
	// rewritten, so the rounds end. Writes wait meanwhile (see
	// Store.writes); rounds are rare: only a replaced value of
	// ValueThreshold or more makes garbage there.
	c.writes.Lock()
	defer c.writes.Unlock()
	for {
		select {
		case <-c.stop:
			return nil
		default:
		}
		err := c.db.RunValueLogGC(0.5)
		if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("badgerstore: value-log GC: %w", err)
		}
	}
}

// tablesAt0 returns the number of tables on level 0.
func tablesAt0(db *badger.DB) int {
	for _, l := range db.Levels() {
		if l.Level == 0 {
			return l.NumTables
		}
	}
	return 0
}
