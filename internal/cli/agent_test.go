package cli_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/internal/cli"
	"github.com/tern-iot/tern/internal/signing"
)

// tern agent release reads the architecture and version from the ternd
// binary, signs and compresses it, prints it with --dry-run and publishes
// it otherwise; it refuses what is not a static linux ternd.
func TestAgentRelease(t *testing.T) {
	dir := t.TempDir()
	pub, err := signing.Generate(dir, "ops")
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "ops.key")
	bin := filepath.Join(dir, "ternd")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w -X github.com/tern-iot/tern/internal/version.Version=v9.8.7",
		"-o", bin, "github.com/tern-iot/tern/cmd/ternd")
	build.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm", "GOARM=7", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}

	code, out, errOut := tern(t, "agent", "release", "--key", key, "--version", "5", "--agent-version", "v9.8.7", "--dry-run", bin)
	if code != cli.ExitOK {
		t.Fatalf("agent release --dry-run: %d %q", code, errOut)
	}
	r, err := fleet.ParseAgentRelease([]byte(out))
	if err != nil {
		t.Fatalf("--dry-run printed no agent release: %v\n%.300s", err, out)
	}
	if r.Arch != "armv7" || r.Version != 5 || r.AgentVersion != "v9.8.7" {
		t.Errorf("release for %s, version %d, ternd %s; want armv7, 5, v9.8.7", r.Arch, r.Version, r.AgentVersion)
	}
	if err := r.Verify(signing.NewTrust(pub)); err != nil {
		t.Errorf("the release does not verify: %v", err)
	}
	if err := r.CheckTopics(fleet.Topics{Fleet: "default"}); err != nil {
		t.Errorf("a device of the default fleet refuses it: %v", err)
	}

	url := fleettest.Embedded(t)
	code, out, errOut = tern(t, "agent", "release", "--broker", url, "--fleet", "cli", "--key", key, "--agent-version", "v9.8.7", bin)
	if code != cli.ExitOK || !strings.Contains(out, "released ternd v9.8.7 for armv7 as version ") || !strings.Contains(out, "on tern/cli/agent/armv7") {
		t.Errorf("agent release: %d %q %q", code, out, errOut)
	}

	self, _ := os.Executable() // a Go binary, but not ternd
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"--arch", "arm64", bin}, cli.ExitFail, "built for armv7, not --arch arm64"},
		{[]string{self}, cli.ExitFail, "not ternd"},
		{[]string{key}, cli.ExitFail, "not a Go binary"},
		{[]string{"--dry-run", "--key", "", bin}, cli.ExitUsage, "needs --key"},
		{[]string{"--version", "9007199254740992", bin}, cli.ExitUsage, "above the largest version"},
	} {
		args := append([]string{"agent", "release", "--key", key, "--dry-run"}, tc.args...)
		if code, _, errOut := tern(t, args...); code != tc.code || !strings.Contains(errOut, tc.says) {
			t.Errorf("tern %s: %d %q; want %d saying %q", strings.Join(args, " "), code, errOut, tc.code, tc.says)
		}
	}
	if code, _, _ := tern(t, "agent"); code != cli.ExitUsage {
		t.Errorf("tern agent: %d, want usage", code)
	}
}
