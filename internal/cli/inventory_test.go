package cli_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/internal/cli"
	"github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/runtime/api"
)

// inventoryFleet is three devices that report their agent and facts, and
// one (pi-004) whose ternd predates them.
func inventoryFleet(t *testing.T) string {
	url := fleettest.Embedded(t)
	started := time.Now().Add(-2 * time.Hour)
	for _, d := range []struct {
		id, group, arch, board, site string
	}{
		{"pi-001", "north", "arm64", "Raspberry Pi 4 Model B Rev 1.4", "mill"},
		{"pi-002", "north", "armv6", "Raspberry Pi Zero W Rev 1.1", "yard"},
		{"pi-003", "south", "armv6", "Raspberry Pi Zero W Rev 1.1", "mill"},
	} {
		s := converged(3)
		s.Agent = &api.AgentInfo{Version: "v1.4.0", Arch: d.arch, Board: d.board, Kernel: "6.6.31", Started: started, Store: "bolt",
			DiskFree: 3 << 30, OutboxDepth: 2, RSS: 19 << 20}
		s.Facts = map[string]string{"site": d.site}
		if d.id == "pi-002" {
			s.Facts["hw_rev"] = "C"
		}
		startDevice(t, url, d.id, d.group).report(t, s)
	}
	startDevice(t, url, "pi-004", "south").report(t, runtime.Status{TargetVersion: 3, Converged: true, Phase: runtime.PhaseIdle, State: json.RawMessage(`{}`)})
	return url
}

// tern inventory lists what devices are, and --where selects among them
// by their agent block, facts, groups and ids, ANDed, = and !=; tern
// status takes the same selection.
func TestInventory(t *testing.T) {
	url := inventoryFleet(t)
	flags := []string{"--broker", url, "--fleet", "cli"}

	code, out, errOut := tern(t, append([]string{"inventory"}, flags...)...)
	if code != cli.ExitOK {
		t.Fatalf("inventory: exit %d, stderr %q", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "DEVICE  VERSION  ARCH") {
		t.Fatalf("inventory table:\n%s", out)
	}
	for _, want := range []string{"Raspberry Pi Zero W Rev 1.1", "3.0G", "19M", "2h0m", "hw_rev=C,site=yard", "bolt"} {
		if !strings.Contains(lines[2], want) {
			t.Errorf("pi-002's row %q lacks %q", lines[2], want)
		}
	}
	if f := strings.Fields(lines[4]); f[0] != "pi-004" || f[1] != "-" {
		t.Errorf("pi-004's row (no agent block): %q", lines[4])
	}

	selected := func(args ...string) []string {
		t.Helper()
		code, out, errOut := tern(t, append(append([]string{"inventory", "--json"}, flags...), args...)...)
		var rows []struct {
			Device string         `json:"device"`
			Agent  *api.AgentInfo `json:"agent"`
			Uptime *float64       `json:"uptime_seconds"`
		}
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("inventory --json %q: %v\n%s", args, err, out)
		}
		var ids []string
		for _, r := range rows {
			ids = append(ids, r.Device)
		}
		if (code == cli.ExitOK) != (len(ids) > 0) {
			t.Errorf("inventory %q: exit %d with %d devices (stderr %q)", args, code, len(ids), errOut)
		}
		return ids
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "pi-001 pi-002 pi-003 pi-004"},
		{[]string{"--where", "arch=armv6"}, "pi-002 pi-003"},
		{[]string{"--where", "arch=armv6", "--where", "site!=yard"}, "pi-003"},
		{[]string{"--where", "site=mill"}, "pi-001 pi-003"},
		{[]string{"--where", "hw_rev!=C"}, "pi-001 pi-003 pi-004"},
		{[]string{"--where", "group=north", "--where", "board=Raspberry Pi Zero W Rev 1.1"}, "pi-002"},
		{[]string{"--group", "south", "--where", "version=v1.4.0"}, "pi-003"},
		{[]string{"--where", "device!=pi-001", "--where", "store=bolt"}, "pi-002 pi-003"},
		{[]string{"--where", "kernel=5.10"}, ""},
	} {
		if got := strings.Join(selected(tc.args...), " "); got != tc.want {
			t.Errorf("inventory %q selected %q, want %q", tc.args, got, tc.want)
		}
	}
	if code, _, errOut := tern(t, append([]string{"inventory", "--where", "arch"}, flags...)...); code != cli.ExitUsage || !strings.Contains(errOut, "is not KEY=VALUE") {
		t.Errorf("--where arch: exit %d, stderr %q", code, errOut)
	}
	// tern status selects the same way.
	code, out, errOut = tern(t, append([]string{"status", "--json", "--where", "arch=armv6", "--where", "site=mill"}, flags...)...)
	if code != cli.ExitOK || !strings.Contains(out, `"pi-003"`) || strings.Contains(out, `"pi-002"`) {
		t.Errorf("status --where: exit %d\n%s\n%s", code, out, errOut)
	}
}
