package boltstore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/tern-iot/tern/runtime/store/internal/kv"
)

// FileName is the name of the database file inside the store's directory.
const FileName = "tern.db"

// bucket is the one bucket that holds every key.
var bucket = []byte("tern")

// lockTimeout bounds the wait for the file lock when another Store (in
// this process or another) has the file open.
const lockTimeout = time.Second

// Scan copies up to this many bytes of keys and values per read
// transaction (always at least one entry, however big).
const scanChunkBytes = 1 << 20

// Store is a store.Store kept in a bbolt file. It is safe for concurrent
// use.
type Store struct {
	db   *bolt.DB
	gate kv.Gate

	mu         sync.Mutex
	queue      []*write // writes waiting for the next commit
	committing bool     // a writer is committing, or is being handed the turn
}

// Open opens, creating them if needed, the directory dir and the database
// file dir/tern.db in it.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("boltstore: create directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, os.ErrNotExist)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("boltstore: open %s: the file is locked: another agent has this store open; stop it first: %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("boltstore: create bucket in %s: %w", path, err)
	}
	if created {
		// bbolt syncs the file, not the directory entry that names it.
		if err := syncDir(dir); err != nil {
			db.Close()
			return nil, fmt.Errorf("boltstore: sync directory %s: %w", dir, err)
		}
	}
	return &Store{db: db}, nil
}

func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be synced there, nor need to be
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Get returns a copy of the value stored under key, or store.ErrNotFound.
func (s *Store) Get(key []byte) ([]byte, error) {
	if len(key) == 0 {
		return nil, fmt.Errorf("boltstore: get: %w", kv.ErrEmptyKey)
	}
	if !s.gate.Enter() {
		return nil, kv.ErrClosed
	}
	defer s.gate.Leave()
	var value []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucket).Get(key)
		if v == nil {
			return kv.ErrNotFound
		}
		value = bytes.Clone(v)
		if value == nil {
			value = []byte{}
		}
		return nil
	})
	if errors.Is(err, kv.ErrNotFound) {
		return nil, kv.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("boltstore: get: %w", err)
	}
	return value, nil
}

// Put stores value under key and syncs the file before it returns.
func (s *Store) Put(key, value []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("boltstore: put: %w", kv.ErrEmptyKey)
	}
	if len(key) > bolt.MaxKeySize {
		return fmt.Errorf("boltstore: put: key of %d bytes: %w", len(key), bolterrors.ErrKeyTooLarge)
	}
	if int64(len(value)) > bolt.MaxValueSize {
		return fmt.Errorf("boltstore: put: value of %d bytes: %w", len(value), bolterrors.ErrValueTooLarge)
	}
	if !s.gate.Enter() {
		return kv.ErrClosed
	}
	defer s.gate.Leave()
	if err := s.write(&write{key: key, value: value}); err != nil {
		return fmt.Errorf("boltstore: put: %w", err)
	}
	return nil
}

// Delete removes key and syncs the file before it returns.
func (s *Store) Delete(key []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("boltstore: delete: %w", kv.ErrEmptyKey)
	}
	if !s.gate.Enter() {
		return kv.ErrClosed
	}
	defer s.gate.Leave()
	if err := s.write(&write{key: key, delete: true}); err != nil {
		return fmt.Errorf("boltstore: delete: %w", err)
	}
	return nil
}

// Scan calls fn for each key with the given prefix, in ascending order.
// No transaction is open while fn runs (see the package doc).
func (s *Store) Scan(prefix []byte, fn func(key, value []byte) error) error {
	if !s.gate.Enter() {
		return kv.ErrClosed
	}
	defer s.gate.Leave()

	var (
		buf   []byte // keys and values of one chunk, back to back
		ends  []int  // per entry: end of its key, end of its value, in buf
		after []byte // resume after this key; nil for the first chunk
	)
	for {
		buf, ends = buf[:0], ends[:0]
		more := false
		err := s.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucket).Cursor()
			var k, v []byte
			if after == nil {
				k, v = c.Seek(prefix)
			} else if k, v = c.Seek(after); bytes.Equal(k, after) {
				k, v = c.Next()
			}
			for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
				if len(buf) >= scanChunkBytes {
					more = true
					break
				}
				buf = append(buf, k...)
				ends = append(ends, len(buf))
				buf = append(buf, v...)
				ends = append(ends, len(buf))
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("boltstore: scan: %w", err)
		}
		if more {
			// Remember the last key before fn sees (and may scribble on) it.
			n, lastStart := len(ends), 0
			if n > 2 {
				lastStart = ends[n-3]
			}
			after = append(after[:0], buf[lastStart:ends[n-2]]...)
		}
		start := 0
		for i := 0; i < len(ends); i += 2 {
			k := buf[start:ends[i]:ends[i]]
			v := buf[ends[i]:ends[i+1]:ends[i+1]]
			start = ends[i+1]
			if err := fn(k, v); err != nil {
				return err
			}
		}
		if !more {
			return nil
		}
	}
}

// Close waits for the operations in flight and closes the file. Calling it
// again returns store.ErrClosed.
func (s *Store) Close() error {
	if !s.gate.Close() {
		return kv.ErrClosed
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("boltstore: close: %w", err)
	}
	return nil
}

// write is one Put or Delete waiting to be committed.
type write struct {
	key, value []byte
	delete     bool
	err        error
	// turn receives false once the write was committed (err is set), or
	// true when its writer must commit the queue.
	turn chan bool
}

// write commits w, together with the writes queued by other goroutines
// meanwhile, in one transaction: one fsync for all of them.
//
// This is group commit, as Badger does it: the first writer commits at
// once, with no delay; writers that arrive while a commit is under way
// queue up, and when it ends the first of them commits the whole queue.
// A lone writer pays one transaction per write, as with db.Update;
// concurrent writers (parallel tasks persisting progress, the outbox)
// share the fsync, which is what costs on an SD card. bbolt's own db.Batch
// would make a lone writer wait for its timer on every write.
func (s *Store) write(w *write) error {
	w.turn = make(chan bool, 1)
	s.mu.Lock()
	s.queue = append(s.queue, w)
	if s.committing {
		s.mu.Unlock()
		if lead := <-w.turn; !lead {
			return w.err
		}
		s.mu.Lock()
	}
	s.committing = true
	batch := s.queue
	s.queue = nil
	s.mu.Unlock()

	s.commit(batch)

	s.mu.Lock()
	if len(s.queue) > 0 {
		// committing stays true: the turn passes to the oldest waiter.
		s.queue[0].turn <- true
	} else {
		s.committing = false
	}
	s.mu.Unlock()
	for _, o := range batch {
		if o != w {
			o.turn <- false
		}
	}
	return w.err
}

// commit applies batch in one transaction and sets each write's err. If
// the transaction fails and holds several writes, each is retried alone so
// that an error reaches only the write it belongs to.
func (s *Store) commit(batch []*write) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		for _, w := range batch {
			if err := w.apply(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil || len(batch) == 1 {
		for _, w := range batch {
			w.err = err
		}
		return
	}
	for _, w := range batch {
		w.err = s.db.Update(func(tx *bolt.Tx) error { return w.apply(tx.Bucket(bucket)) })
	}
}

func (w *write) apply(b *bolt.Bucket) error {
	if w.delete {
		return b.Delete(w.key)
	}
	if w.value == nil {
		// bbolt stores a nil value as an empty one; say so rather than rely on it.
		return b.Put(w.key, []byte{})
	}
	return b.Put(w.key, w.value)
}
