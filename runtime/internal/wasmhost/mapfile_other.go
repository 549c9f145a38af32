//go:build !unix

package wasmhost

import (
	"fmt"
	"os"
)

// mapFile reads the file at path, if it holds at most limit bytes, where
// the system has no mmap.
func mapFile(path string, limit int64) (b []byte, release func(), err error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if st.Size() > limit {
		return nil, nil, fmt.Errorf("%s: %d bytes", path, st.Size())
	}
	b, err = os.ReadFile(path)
	return b, func() {}, err
}
