package daemon

import (
	"bytes"
	"fmt"
	"io"
	"time"

	"github.com/tern-iot/tern/runtime/store/backend"
)

// CheckStore proves the store works on this board and architecture: it
// writes n keys of 1 KiB (enough to leave the memtable and reach disk),
// closes the store, reopens it and reads every key back.
func CheckStore(dir string, n int, out io.Writer) error {
	value := func(i int) []byte {
		return bytes.Repeat([]byte{byte(i), byte(i >> 8), 0xA5}, 342)
	}
	key := func(i int) []byte { return fmt.Appendf(nil, "check/%08d", i) }
	start := time.Now()
	st, err := backend.Open(dir)
	if err != nil {
		return fmt.Errorf("check-store: open: %w", err)
	}
	for i := range n {
		if err := st.Put(key(i), value(i)); err != nil {
			st.Close()
			return fmt.Errorf("check-store: put %d: %w", i, err)
		}
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("check-store: close: %w", err)
	}
	wrote := time.Since(start)
	if st, err = backend.Open(dir); err != nil {
		return fmt.Errorf("check-store: reopen: %w", err)
	}
	defer st.Close()
	found := 0
	for i := range n {
		v, err := st.Get(key(i))
		if err != nil {
			return fmt.Errorf("check-store: key %d of %d lost after reopen (%d found before it): %w", i, n, found, err)
		}
		if !bytes.Equal(v, value(i)) {
			return fmt.Errorf("check-store: key %d corrupt after reopen", i)
		}
		found++
	}
	fmt.Fprintf(out, "store ok: backend %s, %d keys written in %v, all %d read back after reopen\n", backend.Default(), n, wrote.Round(time.Millisecond), found)
	return nil
}
