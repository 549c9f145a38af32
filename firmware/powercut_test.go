package firmware_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"github.com/tern-iot/tern/firmware/update"
)

// TestSwapHelper is not a test: TestPowerCutDuringSwap runs the test
// binary again as a helper process that swaps in a new binary (or rolls
// back) and SIGKILLs itself at one step, as a power cut would stop it.
func TestSwapHelper(t *testing.T) {
	step := os.Getenv("TERN_CUT_AT")
	if step == "" {
		t.Skip("helper process for TestPowerCutDuringSwap")
	}
	d := update.Dir{Path: os.Getenv("TERN_AGENT_DIR"), Hook: func(s string) {
		if s == step {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
	}}
	st, _ := d.Load()
	if os.Getenv("TERN_ROLLBACK") != "" {
		d.Rollback(st, "health check failed")
		return
	}
	bin, err := os.ReadFile(os.Getenv("TERN_NEW_BIN"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(bin)
	if _, err := d.Stage(2, bin, hex.EncodeToString(sum[:])); err != nil {
		t.Fatal(err)
	}
	st.Version = 2
	st.AgentVersion = "v2-test"
	if _, err := d.Swap(st); err != nil {
		t.Fatal(err)
	}
}

// A power cut (SIGKILL) at any step of a swap or a rollback leaves an agent
// that starts: the packaged binary (/usr/bin/ternd, v1 here) starts, picks
// the binary to run, and that one comes up. Real binaries, real processes,
// real files.
func TestPowerCutDuringSwap(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("ternd runs on Linux")
	}
	v1 := ternd(t, runtime.GOARCH, "", "v1-test")
	v2 := ternd(t, runtime.GOARCH, "", "v2-test")
	for _, tc := range []struct {
		step     string
		rollback bool
		runs     string
	}{
		{step: "stage", runs: "v1-test"},
		{step: "previous", runs: "v1-test"},
		{step: "state", runs: "v1-test"},
		{step: "current", runs: "v1-test"}, // trial recorded, current not switched: Boot ends the trial
		{step: "swapped", runs: "v2-test"}, // switched: v2 starts on trial
		{step: "rollback", rollback: true, runs: "v2-test"},
		{step: "rolled-back", rollback: true, runs: "v1-test"}, // current back, state still trial: Boot ends it
	} {
		name := tc.step
		if tc.rollback {
			name = "rollback-" + name
		}
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			packaged := filepath.Join(root, "usr/bin/ternd")
			copyFile(t, v1, packaged)
			data := filepath.Join(root, "var/lib/tern")
			cfg := writeConfig(t, filepath.Join(root, "etc/tern/ternd.yaml"), "device: pi-cut", "board: sim", "data_dir: "+data)
			agent := filepath.Join(data, "agent")
			os.MkdirAll(agent, 0o750)

			helper := func(env ...string) {
				t.Helper()
				cmd := exec.Command(os.Args[0], "-test.run=^TestSwapHelper$")
				cmd.Env = append(os.Environ(), append(env, "TERN_AGENT_DIR="+agent, "TERN_NEW_BIN="+v2)...)
				out, err := cmd.CombinedOutput()
				var ee *exec.ExitError
				if env[0] == "TERN_CUT_AT=none" {
					if err != nil {
						t.Fatalf("swap helper: %v\n%s", err, out)
					}
					return
				}
				if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
					t.Fatalf("the helper was not cut at %s: %v\n%s", tc.step, err, out)
				}
			}
			if tc.rollback {
				helper("TERN_CUT_AT=none") // a complete swap to v2 first
				helper("TERN_CUT_AT="+tc.step, "TERN_ROLLBACK=1")
			} else {
				helper("TERN_CUT_AT=" + tc.step)
			}

			p := start(t, packaged, "run", "--config", cfg)
			if got := p.started(t); got != tc.runs {
				t.Errorf("after a cut at %s, %s runs; want %s", tc.step, got, tc.runs)
			}
			p.stop()
			if p.err != nil {
				t.Errorf("ternd did not stop cleanly: %v", p.err)
			}
			// And it starts again (a second power cycle).
			p = start(t, packaged, "run", "--config", cfg)
			p.started(t)
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(to), 0o755)
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}
