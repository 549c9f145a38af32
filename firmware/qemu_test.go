package firmware_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// targets are the board architectures tern ships for, with the qemu-user
// emulator that runs each and the store backend expected there.
var targets = []struct {
	name, goarch, goarm, qemu, arch, backend string
}{
	{"arm64", "arm64", "", "qemu-aarch64-static", "linux/arm64", "badger"},
	{"armv7", "arm", "7", "qemu-arm-static", "linux/armv7", "bolt"},
	{"armv6", "arm", "6", "qemu-arm-static", "linux/armv6", "bolt"},
}

func TestQemuTernd(t *testing.T) {
	for _, tc := range targets {
		t.Run(tc.name, func(t *testing.T) {
			qemu, err := exec.LookPath(tc.qemu)
			if err != nil {
				t.Fatalf("%s not found: apt-get install -y qemu-user-static", tc.qemu)
			}
			ternd := ternd(t, tc.goarch, tc.goarm, "v1-test")
			if fi, err := os.Stat(ternd); err == nil {
				t.Logf("ternd %s: %d bytes stripped", tc.name, fi.Size())
			}
			out := run(t, qemu, ternd, "version")
			if !strings.Contains(out, tc.arch) {
				t.Fatalf("version says %q, want it to name %s", out, tc.arch)
			}
			// Enough keys to leave the memtable and reach disk, then reopen:
			// the case that loses data with Badger on 32-bit.
			dir := t.TempDir()
			out = run(t, qemu, ternd, "check-store", dir, "21000")
			want := fmt.Sprintf("backend %s, 21000 keys written", tc.backend)
			if !strings.Contains(out, want) || !strings.Contains(out, "all 21000 read back") {
				t.Fatalf("check-store said %q, want %q and all keys read back", out, want)
			}
		})
	}
}

func run(t *testing.T, qemu string, args ...string) string {
	t.Helper()
	cmd := exec.Command(qemu, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(qemu), strings.Join(args, " "), err, out)
	}
	t.Logf("%s", strings.TrimSpace(string(out)))
	return string(out)
}
