package cli_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/internal/cli"
	"github.com/tern-iot/tern/internal/daemon"
	"github.com/tern-iot/tern/internal/testbound"
)

// jobStatusJSON is what tern job status --json prints.
type jobStatusJSON struct {
	For     string `json:"for"`
	Devices []struct {
		Device  string          `json:"device"`
		Phase   string          `json:"phase"`
		Version uint64          `json:"version"`
		Attempt int             `json:"attempt"`
		Result  json.RawMessage `json:"result"`
		Error   string          `json:"error"`
		Why     string          `json:"why"`
	} `json:"devices"`
	Totals map[string]int `json:"totals"`
}

// The operator's whole job path through the CLI and a real ternd on a
// broker: submit to a group, ask how it went (a member that never
// reported the job counts as unreported, exit 4); a job that fails says
// why (exit 5); a job for later is edited, then canceled; ls lists them
// and who says whom a job reaches.
func TestJobCommands(t *testing.T) {
	t.Parallel() // an end-to-end test that mostly waits: beside the other such
	broker := fleettest.Embedded(t)
	mod := relayFile(t)
	cfg := daemon.Config{Device: "pi-001", Fleet: "cli", Broker: broker, DataDir: t.TempDir(), Groups: []string{"doors"}, ClockSync: "assume",
		Modules: []daemon.ModuleConfig{{Name: "relay", Path: mod, Config: map[string]any{"lines": map[string]string{"door": "GPIO17"}}}}}
	cfg.Modules[0].Grants.GPIO = []string{"GPIO17"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- daemon.Run(ctx, cfg, nil, fleettest.Logger(t, "ternd")) }()
	defer func() { cancel(); <-done }()
	// pi-002 is in the group and reports, but runs no jobs (an older
	// ternd, or one that has been off since).
	other := startDevice(t, broker, "pi-002", "doors")
	other.report(t, converged(1))

	fl := []string{"--broker", broker, "--fleet", "cli"}
	run := func(args ...string) (int, string, string) {
		t.Helper()
		return tern(t, append(append([]string{args[0], args[1]}, fl...), args[2:]...)...)
	}
	status := func(id string) (int, jobStatusJSON) {
		t.Helper()
		code, out, errOut := run("job", "status", id, "--json", "--wait", "1s")
		var st jobStatusJSON
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("job status %s: %d %q %q", id, code, out, errOut)
		}
		return code, st
	}
	phaseOf := func(st jobStatusJSON, device string) string {
		for _, d := range st.Devices {
			if d.Device == device {
				return d.Phase
			}
		}
		return ""
	}

	code, out, errOut := run("job", "submit", "--group", "doors", "--module", "relay", "--command", "pulse", "--arg", "relay=door", "--arg", "ms=5")
	if code != cli.ExitOK {
		t.Fatalf("submit: %d %q %q", code, out, errOut)
	}
	pulse := strings.TrimSpace(out)
	var st jobStatusJSON
	testbound.WaitFor(t, "pi-001 ran the pulse", func() bool {
		_, st = status(pulse)
		return phaseOf(st, "pi-001") == "succeeded"
	})
	code, st = status(pulse)
	if code != cli.ExitJobNotDone || phaseOf(st, "pi-002") != "unreported" || st.For != "group/doors" {
		t.Errorf("status of the group's pulse: exit %d, %+v; want 4, pi-002 unreported", code, st)
	}
	if string(st.Devices[0].Result) != `{"line":"GPIO17","ms":5,"relay":"door"}` {
		t.Errorf("pi-001's result: %s", st.Devices[0].Result)
	}
	code, out, _ = run("job", "status", pulse)
	if !strings.Contains(out, "2 devices: 1 succeeded, 1 unreported") || code != cli.ExitJobNotDone {
		t.Errorf("job status table (exit %d):\n%s", code, out)
	}

	code, out, errOut = run("job", "submit", "--device", "pi-001", "--module", "relay", "--command", "pulse", "--args", `{"relay":"gate","ms":5}`)
	if code != cli.ExitOK {
		t.Fatalf("submit: %d %q %q", code, out, errOut)
	}
	bad := strings.TrimSpace(out)
	testbound.WaitFor(t, "the bad pulse failed", func() bool {
		code, st = status(bad)
		return code == cli.ExitJobFailed
	})
	if !strings.Contains(st.Devices[0].Error, `relay "gate" is not configured`) {
		t.Errorf("the failed job's error: %q", st.Devices[0].Error)
	}

	code, out, errOut = run("job", "submit", "--device", "pi-001", "--module", "relay", "--command", "pulse", "--arg", "relay=door", "--at", "+1h")
	if code != cli.ExitOK {
		t.Fatalf("submit: %d %q %q", code, out, errOut)
	}
	later := strings.TrimSpace(out)
	testbound.WaitFor(t, "the later job waiting", func() bool {
		code, st = status(later)
		return phaseOf(st, "pi-001") == "waiting"
	})
	if code != cli.ExitJobNotDone {
		t.Errorf("a waiting job: exit %d, want 4", code)
	}
	if code, out, errOut = run("job", "edit", later, "--arg", "ms=7"); code != cli.ExitOK || !strings.Contains(out, "version 2") {
		t.Fatalf("edit: %d %q %q", code, out, errOut)
	}
	testbound.WaitFor(t, "the edit taken", func() bool { _, st = status(later); return st.Devices[0].Version == 2 })
	if _, out, _ = run("job", "ls", "--json"); !strings.Contains(out, later) {
		t.Errorf("job ls --json lacks %s: %s", later, out)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), wait)
	defer cancel2()
	op, err := fleet.DialOperator(ctx2, fleet.OperatorOptions{Broker: broker, Topics: fleet.Topics{Fleet: "cli"}})
	if err != nil {
		t.Fatal(err)
	}
	js, err := op.RetainedJobs(ctx2, later, time.Second)
	op.Close()
	if err != nil || len(js) != 1 || string(js[0].Args) != `{"ms":7,"relay":"door"}` {
		t.Errorf("the edited job on the broker: %+v, %v; want its other argument kept", js, err)
	}
	if code, out, errOut = run("job", "cancel", later); code != cli.ExitOK || !strings.Contains(out, "canceled") {
		t.Fatalf("cancel: %d %q %q", code, out, errOut)
	}
	testbound.WaitFor(t, "the cancel taken", func() bool { code, st = status(later); return phaseOf(st, "pi-001") == "canceled" })
	if code != cli.ExitJobFailed {
		t.Errorf("a canceled job: exit %d, want 5", code)
	}
	if code, _, errOut = run("job", "edit", later, "--arg", "ms=9"); code != cli.ExitFail || !strings.Contains(errOut, "was canceled") {
		t.Errorf("edit after the cancel: %d %q", code, errOut)
	}

	code, out, _ = run("job", "ls")
	for _, want := range []string{pulse + "  group/doors", bad + "  device/pi-001", later + "  device/pi-001  3", "canceled"} {
		if !strings.Contains(out, want) {
			t.Errorf("job ls lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = run("job", "who", pulse)
	if code != cli.ExitOK || !strings.Contains(out, "pi-001") || !strings.Contains(out, "pi-002") {
		t.Errorf("job who (exit %d):\n%s", code, out)
	}
	if code, _, errOut = run("job", "status", "20261206-000000-nosuch"); code != cli.ExitFail || !strings.Contains(errOut, "no job 20261206-000000-nosuch retained") {
		t.Errorf("status of no job: %d %q", code, errOut)
	}
}
