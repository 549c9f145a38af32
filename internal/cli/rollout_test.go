package cli_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/internal/cli"
	"github.com/tern-iot/tern/internal/daemon"
	"github.com/tern-iot/tern/internal/testbound"
)

// rolloutStatusJSON is what tern rollout status --json prints.
type rolloutStatusJSON struct {
	Rollout fleet.RolloutControl `json:"rollout"`
	Counts  fleet.RolloutCounts  `json:"counts"`
	Devices []struct {
		Device string `json:"device"`
		Wave   int    `json:"wave"`
		Phase  string `json:"phase"`
		Why    string `json:"why"`
	} `json:"devices"`
}

// The operator's rollout path through the CLI and three real ternds on a
// broker, signed: a rollout in one wave reaches every device (exit 0); one
// in two waves an hour apart reaches the first wave only (exit 4), a pause
// halts the rest, a resume lifts it, an abort ends it (exit 5); a rollout
// whose target cannot be reached fails, and the watcher aborts it when
// its rule trips (exit 5); ls lists them.
func TestRolloutCommands(t *testing.T) {
	t.Parallel() // an end-to-end test that mostly waits: beside the other such
	broker := fleettest.Embedded(t)
	dir := t.TempDir()
	if code, _, errOut := tern(t, "keys", "generate", "ops", "--dir", dir); code != cli.ExitOK {
		t.Fatal(errOut)
	}
	key := filepath.Join(dir, "ops.key")
	pub, err := os.ReadFile(filepath.Join(dir, "ops.pub"))
	if err != nil {
		t.Fatal(err)
	}
	mod := relayFile(t)
	if code, _, errOut := tern(t, "module", "sign", "--key", key, mod); code != cli.ExitOK {
		t.Fatal(errOut)
	}
	devices := []string{"pi-001", "pi-002", "pi-003"}
	cache := t.TempDir() // one compilation for the three
	for _, id := range devices {
		cfg := daemon.Config{Device: id, Fleet: "cli", Broker: broker, DataDir: t.TempDir(), CacheDir: cache, Groups: []string{"boilers"}, ClockSync: "assume",
			TrustedKeys: []string{strings.TrimSpace(string(pub))},
			Modules:     []daemon.ModuleConfig{{Name: "relay", Path: mod, Config: map[string]any{"lines": map[string]string{"heater": "GPIO17"}}}}}
		cfg.Modules[0].Grants.GPIO = []string{"GPIO17"}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- daemon.Run(ctx, cfg, nil, fleettest.Logger(t, id)) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	fl := []string{"--broker", broker, "--fleet", "cli"}
	run := func(args ...string) (int, string, string) {
		t.Helper()
		return tern(t, append(append([]string{args[0], args[1]}, fl...), args[2:]...)...)
	}
	status := func(id string) (int, rolloutStatusJSON) {
		t.Helper()
		code, out, errOut := run("rollout", "status", id, "--json", "--wait", "1s")
		var st rolloutStatusJSON
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("rollout status %s: %d %q %q", id, code, out, errOut)
		}
		return code, st
	}
	phases := func(st rolloutStatusJSON) map[string]string {
		m := map[string]string{}
		for _, d := range st.Devices {
			m[d.Device] = d.Phase
		}
		return m
	}

	// One wave: every device.
	code, out, errOut := run("rollout", "start", "--group", "boilers", "--id", "heat-1", "--waves", "100%", "--key", key, `{"relays":{"heater":true}}`)
	if code != cli.ExitOK || !strings.Contains(out, "rollout heat-1: 1 waves (100% at") {
		t.Fatalf("rollout start: %d %q %q", code, out, errOut)
	}
	var st rolloutStatusJSON
	testbound.WaitFor(t, "heat-1 succeeded everywhere", func() bool {
		code, st = status("heat-1")
		return code == cli.ExitOK && len(st.Devices) == len(devices) // every device reported (they start slowly under load)
	})
	if st.Counts.Totals["succeeded"] != 3 || st.Rollout.Scope != "group/boilers" {
		t.Errorf("heat-1: %+v", st)
	}

	// Two waves an hour apart: the second waits; pause, resume, abort.
	waves := []float64{0.5, 1}
	first := 0
	for _, d := range devices {
		if fleet.WaveOf("heat-2", d, waves) == 0 {
			first++
		}
	}
	if first == 0 || first == len(devices) {
		t.Fatalf("rollout heat-2 puts %d of 3 devices in its first wave; pick another id for a test with both waves", first)
	}
	if code, out, errOut = run("rollout", "start", "--group", "boilers", "--id", "heat-2", "--waves", "50%,100%", "--interval", "1h", "--key", key, `{"relays":{"heater":false}}`); code != cli.ExitOK {
		t.Fatalf("rollout start: %d %q %q", code, out, errOut)
	}
	testbound.WaitFor(t, "heat-2's first wave succeeded, the second waits", func() bool {
		code, st = status("heat-2")
		return st.Counts.Totals["succeeded"] == first && st.Counts.Totals["waiting"] == len(devices)-first
	})
	if code != cli.ExitNotConverged || st.Counts.Waves[1]["waiting"] != len(devices)-first {
		t.Errorf("heat-2 in progress: exit %d, %+v; want 4, the second wave waiting", code, st.Counts)
	}
	for _, d := range st.Devices {
		if d.Phase == "waiting" && !strings.Contains(d.Why, "wave 2 of 2 opens at") {
			t.Errorf("%s waits: %q; want it to say when its wave opens", d.Device, d.Why)
		}
	}
	if code, out, errOut = run("rollout", "pause", "heat-2", "--reason", "checking wave 1", "--key", key); code != cli.ExitOK {
		t.Fatalf("rollout pause: %d %q %q", code, out, errOut)
	}
	testbound.WaitFor(t, "heat-2's second wave halted", func() bool {
		_, st = status("heat-2")
		return st.Counts.Totals["halted"] == len(devices)-first && st.Rollout.State == fleet.RolloutPaused
	})
	if code, out, errOut = run("rollout", "resume", "heat-2", "--key", key); code != cli.ExitOK {
		t.Fatalf("rollout resume: %d %q %q", code, out, errOut)
	}
	testbound.WaitFor(t, "heat-2's second wave waits again", func() bool {
		_, st = status("heat-2")
		return st.Counts.Totals["waiting"] == len(devices)-first
	})
	if code, out, errOut = run("rollout", "abort", "heat-2", "--reason", "enough", "--key", key); code != cli.ExitOK {
		t.Fatalf("rollout abort: %d %q %q", code, out, errOut)
	}
	testbound.WaitFor(t, "heat-2's second wave aborted", func() bool {
		code, st = status("heat-2")
		return st.Counts.Totals["aborted"] == len(devices)-first
	})
	if code != cli.ExitRolloutFailed {
		t.Errorf("heat-2 aborted: exit %d; want 5", code)
	}
	if code, _, errOut = run("rollout", "resume", "heat-2", "--key", key); code == cli.ExitOK || !strings.Contains(errOut, "was aborted") {
		t.Errorf("resume of an aborted rollout: %d %q; want it refused", code, errOut)
	}
	code, out, _ = run("rollout", "status", "heat-2", "--devices")
	if !strings.Contains(out, "aborted (enough)") || !strings.Contains(out, "wave 2 (100%, opens") {
		t.Errorf("rollout status (exit %d):\n%s", code, out)
	}

	// A target no device can reach: the watcher aborts on the rule.
	if code, out, errOut = run("rollout", "start", "--group", "boilers", "--id", "heat-3", "--waves", "100%", "--abort-failed", "0%", "--abort-after", "1",
		"--key", key, `{"relays":{"boiler":true}}`); code != cli.ExitOK {
		t.Fatalf("rollout start: %d %q %q", code, out, errOut)
	}
	code, out, errOut = run("rollout", "watch", "heat-3", "--auto-abort", "--key", key)
	if code != cli.ExitRolloutFailed || !strings.Contains(out, "rollout heat-3 aborted: auto-abort: failed > 0% once 1 have finished") {
		t.Fatalf("rollout watch --auto-abort: %d\n%s\n%s", code, out, errOut)
	}
	_, st = status("heat-3")
	if st.Rollout.State != fleet.RolloutAborted || st.Counts.Totals["failed"] == 0 {
		t.Errorf("heat-3 after the watcher: %+v", st)
	}
	for dev, p := range phases(st) {
		if p != "failed" && p != "aborted" {
			t.Errorf("%s: %s", dev, p)
		}
	}

	code, out, _ = run("rollout", "ls")
	for _, id := range []string{"heat-1", "heat-2", "heat-3"} {
		if !strings.Contains(out, id) {
			t.Errorf("rollout ls (exit %d) leaves out %s:\n%s", code, id, out)
		}
	}
	t.Log(out)
}
