package daemon

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tern-iot/tern/firmware/update"
	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/runtime"
)

// script writes an executable that prints say, as ternd version does.
func script(t *testing.T, dir, name, say string) (string, []byte) {
	t.Helper()
	b := []byte("#!/bin/sh\necho '" + say + "'\n")
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p, b
}

// A binary built for another architecture than its release says is
// refused before the swap: the device would follow the other
// architecture's releases from then on.
func TestSmokeTestChecksArchitecture(t *testing.T) {
	dir := t.TempDir()
	arm, _ := script(t, dir, "arm", "ternd v2 go1.26.8 linux/armv6")
	if err := smokeTest(context.Background(), arm, "v2", "armv6"); err != nil {
		t.Errorf("armv6 build on an armv6 device: %v", err)
	}
	err := smokeTest(context.Background(), arm, "v2", "armv7")
	if err == nil || !strings.Contains(err.Error(), "not built for armv7") {
		t.Errorf("armv6 build on an armv7 device: err = %v", err)
	}
	other, _ := script(t, dir, "other", "busybox v1.36")
	if err := smokeTest(context.Background(), other, "v2", "armv6"); err == nil || !strings.Contains(err.Error(), "not ternd v2") {
		t.Errorf("not a ternd: err = %v", err)
	}
}

// The state says a binary is on trial, but another runs: Boot chose the
// new binary and its exec failed. At start that trial is rolled back and
// the fleet hears why, rather than the trial hanging on forever (and
// every later release waiting for it).
func TestSettleRollsBackATrialThatDidNotStart(t *testing.T) {
	root := t.TempDir()
	packaged, _ := script(t, root, "ternd", "ternd v1 go1.26.8 linux/amd64")
	d := update.Dir{Path: filepath.Join(root, "agent")}
	_, b := script(t, root, "new", "ternd v2 go1.26.8 linux/amd64")
	sum := sha256.Sum256(b)
	if _, err := d.Stage(2, b, hex.EncodeToString(sum[:])); err != nil {
		t.Fatal(err)
	}
	st, err := d.Swap(update.State{Version: 2, AgentVersion: "v2"})
	if err != nil {
		t.Fatal(err)
	}
	var events []runtime.Event
	u := &updater{dir: d, self: packaged, arch: "amd64", log: slog.New(slog.DiscardHandler),
		publish: func(e runtime.Event) { events = append(events, e) }}
	if d.OnTrial(st, packaged) {
		t.Fatal("the packaged binary counts as on trial")
	}
	u.settle(st)
	got, err := d.Load()
	if err != nil {
		t.Fatal(err)
	}
	if got.Phase != update.PhaseRolledBack || !got.Reported || d.Current() != "" {
		t.Errorf("after settle: phase %q, reported %v, current %q; want rolled back to the packaged binary, reported", got.Phase, got.Reported, d.Current())
	}
	if len(events) != 1 || events[0].Kind != EventUpdateRolledBack || !strings.Contains(events[0].Message, "could not be started") {
		t.Errorf("events %+v, want one rollback saying the new binary could not be started", events)
	}
}

// Boot finds the data directory in a configuration this binary would
// refuse (an option only a newer ternd knows): the newer binary must get
// to start.
func TestBootDataDirReadsALaterConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "ternd.yaml")
	if err := os.WriteFile(p, []byte("device: pi-001\ndata_dir: state\nstore: sqlite\nfuture_option: {x: 1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(p); err == nil {
		t.Fatal("this ternd accepts store: sqlite; pick an option it refuses")
	}
	if got, want := BootDataDir(p), filepath.Join(dir, "state"); got != want {
		t.Errorf("BootDataDir = %q, want %q", got, want)
	}
	if got := BootDataDir(filepath.Join(dir, "missing.yaml")); got != "/var/lib/tern" {
		t.Errorf("no config: %q, want the default", got)
	}
}

// A release of the version tried last is the same release delivered again
// (silent) or, with another binary, a mistake or a replay: refused with an
// event.
func TestAgentReleaseSameVersionOtherBinary(t *testing.T) {
	root := t.TempDir()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	topics := fleet.Topics{Fleet: "demo"}
	release := func(bin string) fleet.AgentRelease {
		r, err := fleet.NewAgentRelease("amd64", 5, []byte(bin))
		if err != nil {
			t.Fatal(err)
		}
		r.SetTopics(topics)
		r.Sign(priv)
		return r
	}
	d := update.Dir{Path: filepath.Join(root, "agent")}
	tried := release("#!/bin/sh\necho 'a binary that is not ternd'\n")
	var events []runtime.Event
	u := &updater{dir: d, self: filepath.Join(root, "ternd"), arch: "amd64", trust: signing.NewTrust(pub), log: slog.New(slog.DiscardHandler),
		publish: func(e runtime.Event) { events = append(events, e) }}
	if err := u.apply(context.Background(), tried); err != nil { // refused by its smoke test: tried
		t.Fatal(err)
	}
	if len(events) == 0 || events[len(events)-1].Kind != EventUpdateRefused {
		t.Fatalf("events %+v: want the first release refused by its smoke test", events)
	}
	n := len(events)
	if err := u.apply(context.Background(), tried); err != nil || len(events) != n {
		t.Fatalf("the same release delivered again: err %v, new events %+v; want silence", err, events[n:])
	}
	if err := u.apply(context.Background(), release("#!/bin/sh\necho other\n")); err != nil {
		t.Fatal(err)
	}
	if len(events) != n+1 || events[n].Kind != EventUpdateRefused || !strings.Contains(events[n].Message, "version 5 was already tried here with another binary") {
		t.Fatalf("the same version with another binary: events %+v; want one refusal saying so", events[n:])
	}
}
