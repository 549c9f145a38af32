//go:build unix

package platform

import (
	"os"

	"golang.org/x/sys/unix"
)

// MapCodeFile maps size bytes of f at offset, a multiple of the page size,
// read-only and executable (tern patch 5): compiled code read from the
// file cache without copying it, whose pages the kernel shares with the
// page cache and brings in only when run. MunmapCodeSegment unmaps it.
// It fails where the file system forbids executable mappings (noexec);
// the caller then reads the code into memory instead.
func MapCodeFile(f *os.File, offset int64, size int) ([]byte, error) {
	return unix.Mmap(int(f.Fd()), offset, size, unix.PROT_READ|unix.PROT_EXEC, unix.MAP_PRIVATE)
}

// DropCodePages unmaps the pages of a MapCodeFile mapping from the
// process without unmapping the range (tern patch 5): after a checksum
// read every page, only the code that runs comes back.
func DropCodePages(b []byte) error {
	return unix.Madvise(b, unix.MADV_DONTNEED)
}
