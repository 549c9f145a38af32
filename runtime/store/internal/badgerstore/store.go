package badgerstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/tern-iot/tern/runtime/store/internal/kv"
)

// Options sizes Badger for the board. The zero value is not useful: start
// from DefaultOptions and change what you need.
type Options struct {
	// MemTableSize is the size of one in-memory table (and of its
	// write-ahead file). Writes fill it; a full one is flushed to an .sst
	// table file. Badger also caps one transaction at 15% of it.
	MemTableSize int64

	// NumMemtables is how many memtables (the one being written and those
	// waiting to be flushed) may exist at once.
	NumMemtables int

	// ValueThreshold: values of this many bytes or more go to the value
	// log instead of the LSM tree. At most 15% of MemTableSize and at most
	// 1 MiB.
	ValueThreshold int64

	// ValueLogFileSize is the size of one value-log file. No value may be
	// larger than this.
	ValueLogFileSize int64

	// BlockCacheSize is the memory, in bytes, for cached table blocks.
	// Zero turns off both the cache and block compression (Badger needs
	// the cache to decompress).
	BlockCacheSize int64

	// NumLevelZeroTables is how many flushed tables may wait on level 0
	// before they are compacted; NumLevelZeroTablesStall is how many stop
	// writes until compaction catches up.
	NumLevelZeroTables      int
	NumLevelZeroTablesStall int

	// NumCompactors is the number of Badger's compaction goroutines: 0,
	// or 2 and more (Badger refuses 1). With 0 (the default) the store
	// compacts itself after writes, once level 0 holds more than
	// NumLevelZeroTables tables, and nothing runs while nothing is
	// written. Badger's compactors each wake every 50 ms, idle or not.
	NumCompactors int

	// SyncWrites makes every write reach the disk before it returns. The
	// store.Store contract needs it; turn it off only in tests.
	SyncWrites bool

	// Logger receives Badger's own messages. Nil keeps Badger silent.
	Logger *slog.Logger

	onCompact func(start bool) // tests: called as the store starts and ends a compaction
}

// DefaultOptions returns options for a small board: a 64-bit Raspberry Pi
// with 512 MB of RAM and an SD card.
//
// Badger's own defaults are sized for servers (64 MB memtables, 5 of them,
// 1 GB value-log files, a 256 MB block cache, 4 compactors). Here: two 8 MB
// memtables, so a flush writes a small table and buffered writes stay far
// below the RAM; 32 MB value-log files (the largest value, such as a Wasm
// module, is 32 MB); values under 1 MB (all state documents, most modules)
// live in the LSM tree, where compaction reclaims overwritten ones; no
// block cache, hence no compression (the kernel's page cache holds the
// table files, and the cache's goroutine wakes every 2.5 s); no compaction
// goroutines (the store compacts after writes: an idle store wakes
// nobody). Every write is synced.
func DefaultOptions() Options {
	return Options{
		MemTableSize:            8 << 20,
		NumMemtables:            2,
		ValueThreshold:          1 << 20,
		ValueLogFileSize:        32 << 20,
		BlockCacheSize:          0,
		NumLevelZeroTables:      4,
		NumLevelZeroTablesStall: 8,
		NumCompactors:           0,
		SyncWrites:              true,
	}
}

// badgerOptions translates o for Badger.
func (o Options) badgerOptions(dir string) badger.Options {
	bo := badger.DefaultOptions(dir).
		WithMemTableSize(o.MemTableSize).
		WithNumMemtables(o.NumMemtables).
		WithValueThreshold(o.ValueThreshold).
		WithValueLogFileSize(o.ValueLogFileSize).
		WithBlockCacheSize(o.BlockCacheSize).
		WithNumLevelZeroTables(o.NumLevelZeroTables).
		WithNumLevelZeroTablesStall(o.NumLevelZeroTablesStall).
		WithNumCompactors(o.NumCompactors).
		WithSyncWrites(o.SyncWrites).
		WithMetricsEnabled(false).
		// Every transaction writes one key, so there is nothing to conflict.
		WithDetectConflicts(false).
		// Badger's default logger writes to stderr; a library must not.
		WithLogger(nil)
	if o.BlockCacheSize <= 0 {
		bo = bo.WithBlockCacheSize(0).WithCompression(options.None)
	}
	if o.Logger != nil {
		bo = bo.WithLogger(slogLogger{o.Logger})
	}
	return bo
}

// Store is a store.Store kept in a Badger directory. It is safe for
// concurrent use.
type Store struct {
	db   *badger.DB
	gate kv.Gate
	comp *compactor // nil when Badger's compactors run
	// writes is read-locked by Put and Delete, write-locked by the
	// value-log GC: in Badger v4.9.6 the GC reads the memtable's
	// version without the lock that writes take (DB.MaxVersion).
	writes sync.RWMutex
}

// Open opens, creating it if needed, the Badger database in directory dir.
//
// On a 32-bit machine it returns ErrUnsupported (wrapped): Badger loses
// data there (see the package doc); use the bolt backend instead.
func Open(dir string, opts Options) (*Store, error) {
	if err := supported(); err != nil {
		return nil, err
	}
	db, err := badger.Open(opts.badgerOptions(dir))
	if err != nil {
		return nil, fmt.Errorf("badgerstore: open %s: %w", dir, err)
	}
	s := &Store{db: db}
	if opts.NumCompactors == 0 {
		s.comp = newCompactor(db, &s.writes, opts)
	}
	return s, nil
}

// Get returns a copy of the value stored under key, or store.ErrNotFound.
func (s *Store) Get(key []byte) ([]byte, error) {
	if len(key) == 0 {
		return nil, fmt.Errorf("badgerstore: get: %w", kv.ErrEmptyKey)
	}
	if !s.gate.Enter() {
		return nil, kv.ErrClosed
	}
	defer s.gate.Leave()
	var value []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		value, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, kv.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("badgerstore: get: %w", err)
	}
	if value == nil {
		value = []byte{}
	}
	return value, nil
}

// Put stores value under key. With Options.SyncWrites (the default) it is
// on the disk when Put returns.
func (s *Store) Put(key, value []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("badgerstore: put: %w", kv.ErrEmptyKey)
	}
	if !s.gate.Enter() {
		return kv.ErrClosed
	}
	defer s.gate.Leave()
	s.writes.RLock()
	err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(key, value)
	})
	s.writes.RUnlock()
	if err != nil {
		return fmt.Errorf("badgerstore: put: %w", err)
	}
	s.comp.wrote(len(key) + len(value))
	return nil
}

// Delete removes key. With Options.SyncWrites (the default) the removal is
// on the disk when Delete returns.
func (s *Store) Delete(key []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("badgerstore: delete: %w", kv.ErrEmptyKey)
	}
	if !s.gate.Enter() {
		return kv.ErrClosed
	}
	defer s.gate.Leave()
	s.writes.RLock()
	err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Delete(key)
	})
	s.writes.RUnlock()
	if err != nil {
		return fmt.Errorf("badgerstore: delete: %w", err)
	}
	s.comp.wrote(len(key))
	return nil
}

// Scan calls fn for each key with the given prefix, in ascending order,
// from one snapshot of the database taken when Scan starts.
func (s *Store) Scan(prefix []byte, fn func(key, value []byte) error) error {
	if !s.gate.Enter() {
		return kv.ErrClosed
	}
	defer s.gate.Leave()

	// fnErr tells fn's error apart from Badger's, which get wrapped.
	var fnErr error
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
			item := it.Item()
			err := item.Value(func(value []byte) error {
				fnErr = fn(item.Key(), value)
				return fnErr
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("badgerstore: scan: %w", err)
	}
	return nil
}

// Close waits for the operations in flight and a compaction under way,
// flushes the memtable to a table file and closes the database. Calling it
// again returns store.ErrClosed.
func (s *Store) Close() error {
	if !s.gate.Close() {
		return kv.ErrClosed
	}
	s.comp.close()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("badgerstore: close: %w", err)
	}
	return nil
}

// slogLogger passes Badger's messages to a slog.Logger.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Errorf(f string, v ...any)   { s.log(slog.LevelError, f, v) }
func (s slogLogger) Warningf(f string, v ...any) { s.log(slog.LevelWarn, f, v) }
func (s slogLogger) Infof(f string, v ...any)    { s.log(slog.LevelInfo, f, v) }
func (s slogLogger) Debugf(f string, v ...any)   { s.log(slog.LevelDebug, f, v) }

func (s slogLogger) log(level slog.Level, f string, v []any) {
	ctx := context.Background()
	if !s.l.Enabled(ctx, level) {
		return
	}
	s.l.Log(ctx, level, fmt.Sprintf(f, v...), "component", "badger")
}
