package update_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tern-iot/tern/firmware/update"
	"github.com/tern-iot/tern/internal/atomicfile"
)

// bin is a stand-in binary: executable bytes that differ per version.
func bin(v string) ([]byte, string) {
	b := []byte("#!/bin/sh\necho ternd " + v + "\n")
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:])
}

// setup makes a packaged binary and an agent directory.
func setup(t *testing.T) (update.Dir, string) {
	t.Helper()
	root := t.TempDir()
	packaged := filepath.Join(root, "usr/bin/ternd")
	os.MkdirAll(filepath.Dir(packaged), 0o755)
	b, _ := bin("v1")
	if err := os.WriteFile(packaged, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return update.Dir{Path: filepath.Join(root, "var/lib/tern/agent")}, packaged
}

func swapTo(t *testing.T, d update.Dir, version uint64) string {
	t.Helper()
	b, sum := bin("v" + string(rune('0'+version)))
	p, err := d.Stage(version, b, sum)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := d.Load()
	st.Version = version
	if _, err := d.Swap(st); err != nil {
		t.Fatal(err)
	}
	return p
}

func boot(t *testing.T, d update.Dir, self string) (string, update.State) {
	t.Helper()
	exe, st, err := d.Boot(self)
	if err != nil {
		t.Fatalf("Boot: %v", err)
	}
	if exe == "" {
		exe = self
	}
	return exe, st
}

func TestFreshInstallRunsPackaged(t *testing.T) {
	d, packaged := setup(t)
	if exe, st := boot(t, d, packaged); exe != packaged || st.Phase != update.PhaseNone {
		t.Errorf("runs %s in phase %q, want the packaged binary", exe, st.Phase)
	}
}

func TestSwapTrialCommit(t *testing.T) {
	d, packaged := setup(t)
	v2 := swapTo(t, d, 2)
	exe, st := boot(t, d, packaged)
	if exe != v2 || st.Phase != update.PhaseTrial || st.Boots != 1 {
		t.Fatalf("after the swap: runs %s, phase %q, boots %d; want %s on trial, first start", exe, st.Phase, st.Boots, v2)
	}
	if !d.OnTrial(st, v2) || d.OnTrial(st, packaged) {
		t.Error("OnTrial does not name the new binary")
	}
	if err := d.Commit(st); err != nil {
		t.Fatal(err)
	}
	if exe, st := boot(t, d, packaged); exe != v2 || st.Phase != update.PhaseCommitted {
		t.Errorf("after commit: runs %s in %q", exe, st.Phase)
	}
	// The next update keeps v2 as previous, and drops nothing it needs.
	v3 := swapTo(t, d, 3)
	st, _ = d.Load()
	if st.Previous != v2 {
		t.Errorf("previous %q, want %s", st.Previous, v2)
	}
	st, err := d.Rollback(st, "test")
	if err != nil {
		t.Fatal(err)
	}
	if exe, _ := boot(t, d, packaged); exe != v2 {
		t.Errorf("after rolling back v3: runs %s, want %s", exe, v2)
	}
	if _, err := os.Stat(v3); err != nil {
		t.Errorf("rollback removed the failed binary; keep it for a look: %v", err)
	}
}

// A binary on trial that keeps failing to start (crash, hang: the
// watchdog kills it) is rolled back by the packaged binary's Boot.
func TestTrialRolledBackAfterMaxBoots(t *testing.T) {
	d, packaged := setup(t)
	v2 := swapTo(t, d, 2)
	for i := 1; i <= update.MaxTrialBoots; i++ {
		if exe, st := boot(t, d, packaged); exe != v2 || st.Boots != i {
			t.Fatalf("start %d: runs %s, boots %d", i, exe, st.Boots)
		}
	}
	exe, st := boot(t, d, packaged)
	if exe != packaged || st.Phase != update.PhaseRolledBack || !strings.Contains(st.Reason, "starts") {
		t.Errorf("start %d: runs %s, phase %q (%s); want the packaged binary, rolled back", update.MaxTrialBoots+1, exe, st.Phase, st.Reason)
	}
	if st.Tried != 2 {
		t.Errorf("tried %d, want 2: the release must not be tried again", st.Tried)
	}
}

func TestBootSurvivesDamage(t *testing.T) {
	d, packaged := setup(t)
	v2 := swapTo(t, d, 2)
	d.Commit(update.State{Phase: update.PhaseTrial, Version: 2, Binary: "ternd-2"})
	os.Truncate(v2, 0) // the SD card lost it
	if exe, _, err := d.Boot(packaged); exe != "" || err == nil {
		t.Errorf("current is empty: Boot says exec %q (err %v); want the packaged binary and an error to log", exe, err)
	}
	os.WriteFile(filepath.Join(d.Path, "state.json"), []byte("{garbage"), 0o644)
	os.Remove(v2)
	if exe, _, err := d.Boot(packaged); exe != "" || err == nil {
		t.Errorf("corrupt state and missing binary: exec %q, err %v", exe, err)
	}
}

func TestStageChecksHash(t *testing.T) {
	d, _ := setup(t)
	b, _ := bin("v2")
	if _, err := d.Stage(2, b, strings.Repeat("0", 64)); err == nil {
		t.Fatal("staged a binary whose hash does not match")
	}
	if _, err := os.Stat(filepath.Join(d.Path, update.BinaryName(2))); !os.IsNotExist(err) {
		t.Errorf("the bad binary stayed: %v", err)
	}
}

// A binary on trial that the storage lost (truncated, gone) is rolled back
// at the next start, with a reason: the trial does not hang on forever
// with the packaged binary running.
func TestTrialOfLostBinaryRolledBack(t *testing.T) {
	d, packaged := setup(t)
	v2 := swapTo(t, d, 2)
	if err := os.Truncate(v2, 0); err != nil {
		t.Fatal(err)
	}
	exe, st, _ := d.Boot(packaged)
	if exe != "" || st.Phase != update.PhaseRolledBack || !strings.Contains(st.Reason, "not an executable file") {
		t.Errorf("Boot: exec %q, phase %q (%s); want the packaged binary and a rollback saying why", exe, st.Phase, st.Reason)
	}
	if st.Tried != 2 {
		t.Errorf("tried %d, want 2", st.Tried)
	}
}

// Temporary files a cut left in the agent directory go at the next start.
func TestBootRemovesTemporaries(t *testing.T) {
	d, packaged := setup(t)
	swapTo(t, d, 2)
	left := filepath.Join(d.Path, atomicfile.TempPrefix+"ternd-3.4711")
	if err := os.WriteFile(left, make([]byte, 1024), 0o644); err != nil {
		t.Fatal(err)
	}
	boot(t, d, packaged)
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("a half-staged binary is still there after Boot: %v", err)
	}
}

// Installing a package removes current while a binary is on trial: the
// packaged binary runs, and the reason says so rather than blame a cut.
func TestPackageInstallEndsTrial(t *testing.T) {
	d, packaged := setup(t)
	swapTo(t, d, 2)
	st, _ := d.Load()
	if err := d.Commit(st); err != nil {
		t.Fatal(err)
	}
	swapTo(t, d, 3)
	if err := d.Reset(); err != nil { // what postinst does
		t.Fatal(err)
	}
	exe, st := boot(t, d, packaged)
	if exe != packaged || st.Phase != update.PhaseRolledBack || !strings.Contains(st.Reason, "installing a package") {
		t.Errorf("runs %s, phase %q (%s); want the packaged binary, the trial ended by the install", exe, st.Phase, st.Reason)
	}
}
