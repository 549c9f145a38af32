package atomicfile_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tern-iot/tern/internal/atomicfile"
)

func TestWrite(t *testing.T) {
	p := filepath.Join(t.TempDir(), "etc", "tern", "ternd.yaml")
	for _, body := range []string{"device: a\n", "device: b\n"} {
		if err := atomicfile.Write(p, []byte(body), 0o640); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil || string(b) != body {
			t.Fatalf("read back %q, %v; want %q", b, err, body)
		}
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640 whatever the umask", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the file (no temporary left)", len(entries))
	}
}

func TestWriteGroup(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	gid := os.Getgid() // a group the writer may always give
	if err := atomicfile.WriteGroup(p, []byte("x"), 0o600, gid); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "x" {
		t.Errorf("read back %q", b)
	}
}

// A write that cannot happen says where, and leaves the old file alone.
func TestWriteFails(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "not-a-dir")
	if err := os.WriteFile(blocker, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := atomicfile.Write(filepath.Join(blocker, "f"), []byte("new"), 0o644)
	if err == nil || !strings.Contains(err.Error(), "not-a-dir") {
		t.Errorf("err = %v, want one naming the path", err)
	}
	// Renaming a directory over a file is refused: the file keeps its bytes.
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, "f"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sub, 0o500); err != nil { // no new file can go in
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(sub, 0o755) })
	if os.Geteuid() != 0 { // root writes anyway
		if err := atomicfile.Write(filepath.Join(sub, "f"), []byte("new"), 0o644); err == nil {
			t.Error("write into a read-only directory succeeded")
		}
	}
	if b, _ := os.ReadFile(filepath.Join(sub, "f")); string(b) != "old" {
		t.Errorf("after a failed write the file holds %q, want the old bytes", b)
	}
}

// Writers of one file at once never tear it: each has its own temporary,
// and what is left is one writer's bytes, whole.
func TestConcurrentWriters(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.json")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			body := []byte(strings.Repeat(string(rune('a'+i)), 64<<10))
			for range 20 {
				if err := atomicfile.Write(p, body, 0o644); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 64<<10 || strings.Count(string(b), string(b[0])) != len(b) {
		t.Fatalf("after concurrent writes the file holds %d bytes, not one writer's whole", len(b))
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Errorf("%d entries left, want only the file", len(entries))
	}
}

// A cut between creating the temporary and renaming it leaves a file
// RemoveTemps deletes; the target stays.
func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	if err := atomicfile.Write(filepath.Join(dir, "keep"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	left := filepath.Join(dir, atomicfile.TempPrefix+"keep.123")
	if err := os.WriteFile(left, []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	atomicfile.RemoveTemps(dir)
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("temporary still there: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "keep")); string(b) != "x" {
		t.Errorf("target holds %q", b)
	}
}
