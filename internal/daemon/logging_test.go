package daemon

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// logTo logs a line at each level through NewLogger on a new file, with
// JOURNAL_STREAM naming that file (journal) or another one, and returns
// the file's lines.
func logTo(t *testing.T, format string, journal bool) []string {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	named := f
	if !journal {
		if named, err = os.Create(filepath.Join(dir, "other")); err != nil {
			t.Fatal(err)
		}
		defer named.Close()
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(named.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino))
	if got := UnderJournal(f); got != journal {
		t.Fatalf("UnderJournal = %v, want %v", got, journal)
	}
	log := NewLogger(f, format, slog.LevelDebug).With("device", "pi-001")
	log.Debug("debug line")
	log.Info("info line", "n", 1)
	log.Warn("warn line")
	log.WithGroup("g").Error("error line", "err", "multi\nline")
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// Under journald (JOURNAL_STREAM names stderr's device and inode), every
// line starts with its priority, and text lines have no time; elsewhere,
// or when the variable names another file (inherited by a child whose
// stderr is not the journal), lines are as slog writes them. JSON lines
// keep their time either way, and stay JSON after the prefix.
func TestJournalLogs(t *testing.T) {
	prefixes := []string{"<7>", "<6>", "<4>", "<3>"}
	lines := logTo(t, "text", true)
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4: %q", len(lines), lines)
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, prefixes[i]+"level=") || strings.Contains(l, "time=") || !strings.Contains(l, "device=pi-001") {
			t.Errorf("journal text line %q: want %s, level first, no time, the logger's attributes", l, prefixes[i])
		}
	}
	for i, l := range logTo(t, "json", true) {
		rest, ok := strings.CutPrefix(l, prefixes[i])
		var v map[string]any
		if !ok || json.Unmarshal([]byte(rest), &v) != nil || v["time"] == nil || v["device"] != "pi-001" {
			t.Errorf("journal json line %q: want %s then a JSON object with its time", l, prefixes[i])
		}
	}
	for _, format := range []string{"text", "json"} {
		for _, l := range logTo(t, format, false) {
			if strings.HasPrefix(l, "<") || !strings.Contains(l, "time") {
				t.Errorf("%s line not under journald %q: want no prefix, a time", format, l)
			}
		}
	}
}
