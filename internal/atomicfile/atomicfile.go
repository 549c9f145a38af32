package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// TempPrefix begins the names of the temporary files Write makes beside
// its target; a power cut may leave one behind (see RemoveTemps).
const TempPrefix = ".tmp-"

// RemoveTemps deletes the temporary files a cut left in dir.
func RemoveTemps(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), TempPrefix) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// Write writes b to path atomically with permissions perm, creating the
// directory if needed.
func Write(path string, b []byte, perm os.FileMode) error {
	return WriteGroup(path, b, perm, -1)
}

// WriteGroup is Write that also gives the file group gid before it
// appears under its name (gid < 0: the writer's group). Changing the group
// needs root or membership of gid.
func WriteGroup(path string, b []byte, perm os.FileMode, gid int) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// A temporary of its own, so that two writers of one file never
	// share one: the last rename wins, whole.
	f, err := os.CreateTemp(dir, TempPrefix+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, perm) // OpenFile's mode is filtered by the umask
	}
	if err == nil && gid >= 0 {
		err = os.Chown(tmp, -1, gid)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return SyncDir(dir)
}

// SyncDir fsyncs directory dir, so that renames and links made in it
// survive a power cut.
func SyncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
