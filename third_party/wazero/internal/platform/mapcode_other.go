//go:build !unix

package platform

import (
	"errors"
	"os"
)

// MapCodeFile is not supported here: the caller reads the code into memory.
func MapCodeFile(*os.File, int64, int) ([]byte, error) {
	return nil, errors.New("mapping code from a file is not supported on this platform")
}

// DropCodePages does nothing where MapCodeFile is not supported.
func DropCodePages([]byte) error { return nil }
