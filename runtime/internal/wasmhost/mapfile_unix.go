//go:build unix

package wasmhost

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// mapFile maps the file at path read-only, if it holds at most limit
// bytes. The file must never be changed in place while mapped (a
// truncation would fault the process): the files mapped here are only
// ever replaced by a rename. release unmaps it.
func mapFile(path string, limit int64) (b []byte, release func(), err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if st.Size() == 0 || st.Size() > limit {
		return nil, nil, fmt.Errorf("%s: %d bytes", path, st.Size())
	}
	b, err = unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		return nil, nil, err
	}
	return b, func() { unix.Munmap(b) }, nil
}
