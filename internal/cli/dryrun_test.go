package cli_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tern-iot/tern/boards"
	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/internal/cli"
	"github.com/tern-iot/tern/internal/daemon"
	"github.com/tern-iot/tern/internal/testbound"
)

// dryRunJSON is what tern push --dry-run --json prints.
type dryRunJSON struct {
	ID      string `json:"id"`
	Devices int    `json:"devices"`
	Plans   []struct {
		Tasks   []fleet.DryRunTask `json:"tasks"`
		Devices []string           `json:"devices"`
	} `json:"plans"`
	Converged []string `json:"converged"`
	Cannot    []struct {
		Reason  string   `json:"reason"`
		Why     string   `json:"why"`
		Devices []string `json:"devices"`
	} `json:"cannot"`
	Refused []struct {
		Reason  string   `json:"reason"`
		Devices []string `json:"devices"`
	} `json:"refused"`
	NoAnswer []string `json:"no_answer"`
}

// states follows the fleet's state reports: the latest of each device.
type states struct {
	mu   sync.Mutex
	last map[string]fleet.StateReport
}

func watchStates(t *testing.T, broker string) *states {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	op, err := fleet.DialOperator(ctx, fleet.OperatorOptions{Broker: broker, Topics: fleet.Topics{Fleet: "cli"}})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := op.WatchStates(ctx, fleet.AnyDevice)
	if err != nil {
		t.Fatal(err)
	}
	s := &states{last: map[string]fleet.StateReport{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for r := range ch {
			s.mu.Lock()
			s.last[r.Device] = r
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done; op.Close() })
	return s
}

func (s *states) of(id string) (fleet.StateReport, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.last[id]
	return r, ok
}

// A fleet dry-run through the CLI and real ternds on simulated boards, in
// group floor: two devices would switch both relays, one converges already
// (its own target says so), one cannot because its heater relay is not
// configured, one because it runs no relay module at all; the summary
// groups them so, exit 5, and no device changed anything: no GPIO line was
// written, every device holds the version it held, and a dry-run after it
// still finds the same plan. An unsigned request is refused by every
// device, and a device that does not answer counts as such (exit 4).
func TestDryRun(t *testing.T) {
	t.Parallel() // an end-to-end test that mostly waits: beside the other such
	broker := fleettest.Embedded(t)
	keyDir := t.TempDir()
	if code, _, errOut := tern(t, "keys", "generate", "ops", "--dir", keyDir); code != cli.ExitOK {
		t.Fatalf("keys generate: %s", errOut)
	}
	key := filepath.Join(keyDir, "ops.key")
	pub, err := os.ReadFile(filepath.Join(keyDir, "ops.pub"))
	if err != nil {
		t.Fatal(err)
	}
	mod := relayFile(t)
	if code, _, errOut := tern(t, "module", "sign", "--key", key, mod); code != cli.ExitOK {
		t.Fatalf("module sign: %s", errOut)
	}
	board, err := boards.Lookup("sim")
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	watch := watchStates(t, broker)
	boardsOf := map[string]*sim.Board{}
	lines := map[string]string{"fan": "GPIO17", "heater": "GPIO27"}
	for _, dev := range []struct {
		id    string
		lines map[string]string // the relay module's lines; nil: no relay module
	}{
		{"pi-001", lines}, {"pi-002", lines}, {"pi-003", map[string]string{"fan": "GPIO17"}}, {"pi-004", nil}, {"pi-005", lines},
	} {
		sb, err := sim.NewBoard(sim.BoardSpec{}, board.Lines(), nil)
		if err != nil {
			t.Fatal(err)
		}
		boardsOf[dev.id] = sb
		cfg := daemon.Config{Device: dev.id, Fleet: "cli", Broker: broker, DataDir: t.TempDir(), CacheDir: cache, Board: "sim",
			Groups: []string{"floor"}, ClockSync: "assume", TrustedKeys: []string{strings.TrimSpace(string(pub))}}
		if dev.lines != nil {
			m := daemon.ModuleConfig{Name: "relay", Path: mod, Config: map[string]any{"lines": dev.lines}}
			for _, l := range dev.lines {
				m.Grants.GPIO = append(m.Grants.GPIO, l)
			}
			cfg.Modules = []daemon.ModuleConfig{m}
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- daemon.Run(ctx, cfg, &daemon.Hardware{GPIO: sb.GPIO, I2C: sb.I2C}, fleettest.Logger(t, dev.id))
		}()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("ternd %s: %v", dev.id, err)
			}
		})
	}
	// pi-006 is in another group and runs no ternd that answers dry-runs.
	startDevice(t, broker, "pi-006", "attic").report(t, converged(1))

	fl := []string{"--broker", broker, "--fleet", "cli", "--key", key}
	both := `{"relays":{"fan":true,"heater":true}}`
	if code, out, errOut := tern(t, append(append([]string{"push"}, fl...), "--device", "pi-005", "--version", "1", both)...); code != cli.ExitOK {
		t.Fatalf("push to pi-005: %d %s %s", code, out, errOut)
	}
	testbound.WaitFor(t, "every device reported, pi-005 converged on both relays", func() bool {
		for _, id := range []string{"pi-001", "pi-002", "pi-003", "pi-004"} {
			if _, ok := watch.of(id); !ok {
				return false
			}
		}
		s, ok := watch.of("pi-005")
		return ok && s.Converged && s.TargetVersion == 1
	})

	// What the hardware and the devices hold before.
	type held struct {
		levels  [2]gpio.Level
		writes  [2]int
		version uint64
	}
	snapshot := func() map[string]held {
		out := map[string]held{}
		for id, sb := range boardsOf {
			var h held
			for i, l := range []string{"GPIO17", "GPIO27"} {
				lv, err := sb.GPIO.Level(l)
				if err != nil {
					t.Fatal(err)
				}
				h.levels[i], h.writes[i] = lv, sb.GPIO.Writes(l)
			}
			s, _ := watch.of(id)
			h.version = s.TargetVersion
			out[id] = h
		}
		return out
	}
	before := snapshot()
	if h := before["pi-005"]; h.levels != [2]gpio.Level{gpio.High, gpio.High} {
		t.Fatalf("pi-005's relays before the dry-run: %v, want both on", h.levels)
	}

	code, out, errOut := tern(t, append(append([]string{"push", "--dry-run", "--json"}, fl...), "--group", "floor", both)...)
	var got dryRunJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("push --dry-run --json: exit %d, %v\n%s\n%s", code, err, out, errOut)
	}
	t.Logf("dry-run summary: %s", out)
	if code != cli.ExitDryRunCannot {
		t.Errorf("exit %d, want %d (some cannot)", code, cli.ExitDryRunCannot)
	}
	if got.Devices != 5 || len(got.NoAnswer) != 0 || len(got.Refused) != 0 {
		t.Errorf("%d devices, no answer from %v, refused %v; want 5, all answering", got.Devices, got.NoAnswer, got.Refused)
	}
	if len(got.Plans) != 1 || !slices.Equal(got.Plans[0].Devices, []string{"pi-001", "pi-002"}) || len(got.Plans[0].Tasks) != 2 {
		t.Errorf("plans: %+v, want one plan of 2 tasks for pi-001 and pi-002", got.Plans)
	} else {
		for _, task := range got.Plans[0].Tasks {
			if !strings.HasPrefix(task.Job, "relay.") || !strings.HasPrefix(task.Path, "/relays/") {
				t.Errorf("a task of the plan: %v", task)
			}
		}
	}
	if !slices.Equal(got.Converged, []string{"pi-005"}) {
		t.Errorf("converged: %v, want pi-005", got.Converged)
	}
	reasons := map[string]string{} // device → reason
	for _, g := range got.Cannot {
		for _, d := range g.Devices {
			reasons[d] = g.Reason
		}
	}
	if len(got.Cannot) != 2 || len(reasons) != 2 {
		t.Errorf("cannot: %+v, want two reasons, one device each", got.Cannot)
	}
	if r := reasons["pi-003"]; !strings.Contains(r, "/relays/heater") || !strings.Contains(r, "relay.set") {
		t.Errorf("pi-003's reason: %q, want the planner's why for /relays/heater", r)
	}
	if r := reasons["pi-004"]; !strings.Contains(r, "no loaded module senses or sets /relays") {
		t.Errorf("pi-004's reason: %q, want that no module handles /relays", r)
	}

	// The candidate changed nothing: a dry-run of pi-001 alone, after it,
	// finds the same plan on pi-001's live state.
	code, out, errOut = tern(t, append(append([]string{"push", "--dry-run"}, fl...), "--device", "pi-001", both)...)
	if code != cli.ExitOK || !strings.Contains(out, "1 would run plan A (2 tasks): pi-001") || !strings.Contains(out, "relay.switch update /relays/fan") {
		t.Errorf("dry-run of pi-001 after the group's: exit %d\n%s\n%s", code, out, errOut)
	}
	after := snapshot()
	for id, h := range before {
		if after[id] != h {
			t.Errorf("%s changed during the dry-runs: before %+v, after %+v", id, h, after[id])
		}
	}

	// Unsigned: every device refuses it, and says how to sign.
	code, out, _ = tern(t, "push", "--dry-run", "--broker", broker, "--fleet", "cli", "--group", "floor", both)
	if code != cli.ExitDryRunCannot || !strings.Contains(out, "5 refused, by reason") || !strings.Contains(out, "tern push --dry-run --key") {
		t.Errorf("unsigned dry-run: exit %d\n%s", code, out)
	}
	// tern rollout start --dry-run asks the same, and starts nothing.
	code, out, errOut = tern(t, append(append([]string{"rollout", "start", "--dry-run", "--waves", "50%,100%"}, fl...), "--group", "floor", both)...)
	if code != cli.ExitDryRunCannot || !strings.Contains(out, "2 would run plan A (2 tasks): pi-001, pi-002") || !strings.Contains(out, "2 cannot, by reason") {
		t.Errorf("rollout start --dry-run: exit %d\n%s\n%s", code, out, errOut)
	}
	// A device that does not answer.
	code, out, _ = tern(t, append(append([]string{"push", "--dry-run", "--timeout", "1s"}, fl...), "--device", "pi-006", both)...)
	if code != cli.ExitDryRunNoAnswer || !strings.Contains(out, "1 did not answer within 1s: pi-006") {
		t.Errorf("dry-run of a device that does not answer: exit %d\n%s", code, out)
	}
}

// Dry-run flags that cannot work are usage errors, before any broker is
// dialled; a push with --json but without --dry-run does not push.
func TestDryRunUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"push", "--device", "pi-001", "--json", `{}`}, "go with --dry-run"},
		{[]string{"push", "--device", "pi-001", "--timeout", "5s", `{}`}, "go with --dry-run"},
		{[]string{"push", "--dry-run", "--timeout", "0s", "--device", "pi-001", `{}`}, "must be positive"},
		{[]string{"push", "--dry-run", "--replaces", "9", "--version", "3", "--device", "pi-001", `{}`}, "not a rebase"},
		{[]string{"sign", "--dry-run", "--device", "pi-001", `{}`}, "flag provided but not defined"},
	} {
		code, out, errOut := tern(t, append(tc.args, "--broker", "tcp://"+fleettest.FreeAddr(t))...)
		if code != cli.ExitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want a usage error mentioning %q", tc.args, code, out, errOut, tc.want)
		}
	}
}
