package store

import "github.com/tern-iot/tern/runtime/store/internal/kv"

// Store is a durable ordered key-value store. Put and Delete are durable
// when they return: the write has been synced to the disk.
//
// All methods return ErrClosed once Close has been called.
type Store interface {
	// Get returns the value stored under key, or ErrNotFound if there is
	// none. The returned slice is the caller's to keep and modify.
	Get(key []byte) ([]byte, error)

	// Put stores value under key, replacing any previous value.
	Put(key, value []byte) error

	// Delete removes key. Deleting an absent key is not an error.
	Delete(key []byte) error

	// Scan calls fn for every key that starts with prefix, in ascending
	// byte order of the keys; an empty prefix scans the whole store. The
	// first error fn returns stops the scan and Scan returns it unchanged.
	// The slices passed to fn are valid only until fn returns: copy them
	// to keep them.
	Scan(prefix []byte, fn func(key, value []byte) error) error

	// Close waits for the operations in flight and releases the store.
	// Calling Close again returns ErrClosed.
	Close() error
}

// Errors that callers branch on with errors.Is.
var (
	// ErrNotFound is returned by Get when no value is stored under the key.
	ErrNotFound = kv.ErrNotFound

	// ErrClosed is returned by every method once Close has been called.
	ErrClosed = kv.ErrClosed

	// ErrEmptyKey is returned (wrapped) by Get, Put and Delete when the key
	// is empty. An empty key is a programming error, never data.
	ErrEmptyKey = kv.ErrEmptyKey
)
