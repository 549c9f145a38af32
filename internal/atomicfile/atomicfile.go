package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

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
	tmp := filepath.Join(dir, "."+filepath.Base(path)+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
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
