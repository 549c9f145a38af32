package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/internal/cli"
	"github.com/tern-iot/tern/internal/testbound"
	"github.com/tern-iot/tern/runtime"
)

// wait bounds every wait for something the broker should deliver.
// wait bounds every wait: a bound on a hang (see testbound).
var wait = testbound.Hang

// device is the real device end of the fleet contract (fleet.Device, as
// ternd uses it) that a test drives by hand: no agent behind it.
type device struct {
	*fleet.Device
	stop func()
}

func startDevice(t *testing.T, url, id string, groups ...string) *device {
	t.Helper()
	d, err := fleet.NewDevice(fleet.DeviceOptions{Broker: url, Topics: fleet.Topics{Fleet: "cli"}, Device: id, Groups: groups,
		Store: fleettest.Store(t), ConnectTimeout: 2 * time.Second, MaxRetryInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("device %s: %v", id, err)
			}
		})
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(wait)
	for !d.Connected() {
		if time.Now().After(deadline) {
			t.Fatalf("device %s did not connect to %s", id, url)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &device{Device: d, stop: stop}
}

func (d *device) report(t *testing.T, s runtime.Status) {
	t.Helper()
	if s.Time.IsZero() {
		s.Time = time.Now()
	}
	if err := d.PublishState(t.Context(), s); err != nil {
		t.Fatal(err)
	}
}

func converged(v uint64) runtime.Status {
	return runtime.Status{TargetVersion: v, Converged: true, Phase: runtime.PhaseIdle, State: json.RawMessage(`{"relays":{"heater":true}}`),
		Modules: map[string]string{"relay": "1.2.0"}}
}

// mixedFleet is three devices in three states: pi-001 converged and online,
// pi-002 failing, pi-003 converged but gone offline.
func mixedFleet(t *testing.T) string {
	url := fleettest.Embedded(t)
	startDevice(t, url, "pi-001", "heaters").report(t, converged(7))
	startDevice(t, url, "pi-002", "heaters").report(t, runtime.Status{TargetVersion: 7, Phase: runtime.PhaseFailed,
		Error: "i2c: no device acknowledged the address", State: json.RawMessage(`{}`)})
	gone := startDevice(t, url, "pi-003", "fans")
	gone.report(t, converged(7))
	gone.stop()
	return url
}

func TestStatus(t *testing.T) {
	url := mixedFleet(t)
	flags := []string{"--broker", url, "--fleet", "cli"}

	code, out, errOut := tern(t, append([]string{"status"}, flags...)...)
	if code != cli.ExitNotConverged {
		t.Errorf("status of a mixed fleet: exit %d, want %d (stderr %q)", code, cli.ExitNotConverged, errOut)
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		f := strings.Fields(line)
		rows[f[0]] = f
	}
	// Columns: DEVICE ONLINE VERSION CONVERGED PHASE AGE ERROR... MODULES
	for id, want := range map[string][]string{
		"pi-001": {"yes", "7", "yes", "idle"},
		"pi-002": {"yes", "7", "no", "failed"},
		"pi-003": {"no", "7", "yes", "idle"},
	} {
		if got := rows[id]; len(got) < 5 || strings.Join(got[1:5], " ") != strings.Join(want, " ") {
			t.Errorf("row of %s: %q, want it to start with %q\n%s", id, got, want, out)
		}
	}
	if !strings.Contains(out, "i2c: no device acknowledged") || !strings.Contains(rows["pi-001"][len(rows["pi-001"])-1], "relay@1.2.0") {
		t.Errorf("table lacks the error or the module versions:\n%s", out)
	}
	if !strings.Contains(errOut, "2 of 3 devices are not converged and online") || !strings.Contains(errOut, "pi-003 (offline)") {
		t.Errorf("stderr should name what is wrong: %q", errOut)
	}

	// --json, one group.
	code, out, errOut = tern(t, append([]string{"status", "--group", "heaters", "--json"}, flags...)...)
	if code != cli.ExitNotConverged {
		t.Errorf("status --group heaters: exit %d (stderr %q)", code, errOut)
	}
	var got []struct {
		Device        string            `json:"device"`
		Online        *bool             `json:"online"`
		TargetVersion uint64            `json:"target_version"`
		Converged     bool              `json:"converged"`
		Phase         string            `json:"phase"`
		Error         string            `json:"error"`
		AgeSeconds    *float64          `json:"age_seconds"`
		Modules       map[string]string `json:"modules"`
		Groups        []string          `json:"groups"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("status --json is not a JSON array: %v\n%s", err, out)
	}
	if len(got) != 2 || got[0].Device != "pi-001" || got[1].Device != "pi-002" {
		t.Fatalf("status --group heaters: %+v, want pi-001 and pi-002", got)
	}
	if !got[0].Converged || got[0].Online == nil || !*got[0].Online || got[0].Modules["relay"] != "1.2.0" || got[0].AgeSeconds == nil {
		t.Errorf("pi-001: %+v", got[0])
	}
	if got[1].Converged || got[1].Phase != "failed" || !strings.Contains(got[1].Error, "i2c") || got[1].Groups[0] != "heaters" {
		t.Errorf("pi-002: %+v", got[1])
	}

	// One device, converged and online: exit 0, so a script can gate on it.
	if code, out, errOut := tern(t, append([]string{"status", "--device", "pi-001"}, flags...)...); code != cli.ExitOK || !strings.Contains(out, "pi-001") || strings.Contains(out, "pi-002") {
		t.Errorf("status --device pi-001: exit %d\n%s\n%s", code, out, errOut)
	}
	// Nobody there: a failure that says where it looked.
	code, out, errOut = tern(t, "status", "--broker", url, "--fleet", "empty", "--json", "--wait", "500ms")
	if code != cli.ExitFail || strings.TrimSpace(out) != "[]" || !strings.Contains(errOut, "no device reported in fleet empty") {
		t.Errorf("status of an empty fleet: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// A rollout to a group, watched until every device of the group converged;
// a device of another group that never converges does not hold it up.
func TestWatchGroupRollout(t *testing.T) {
	url := fleettest.Embedded(t)
	a := startDevice(t, url, "pi-001", "heaters")
	b := startDevice(t, url, "pi-002", "heaters", "floor-2")
	c := startDevice(t, url, "pi-003", "fans")
	a.report(t, converged(7))
	b.report(t, converged(6))
	c.report(t, runtime.Status{TargetVersion: 6, Phase: runtime.PhaseRunning})

	out := newSyncBuffer()
	done := make(chan int, 1)
	var errOut strings.Builder
	go func() {
		done <- cli.MainContext(t.Context(), []string{"watch", "--broker", url, "--fleet", "cli", "--group", "heaters",
			"--version", "7", "--until-converged", "--timeout", wait.String()}, out, &errOut)
	}()
	out.waitFor(t, "rollout v7: 1/2 converged, 0 failed, 1 pending, 0 offline")
	b.report(t, runtime.Status{TargetVersion: 7, Phase: runtime.PhaseFailed, Error: "relay: GPIO17 busy"})
	out.waitFor(t, "rollout v7: 1/2 converged, 1 failed, 0 pending, 0 offline")
	if !strings.Contains(out.String(), "error: relay: GPIO17 busy") {
		t.Errorf("a failing device should get a line of its own:\n%s", out)
	}
	b.report(t, converged(7))
	select {
	case code := <-done:
		if code != cli.ExitOK {
			t.Fatalf("watch: exit %d\n%s\n%s", code, out, errOut.String())
		}
	case <-time.After(wait):
		t.Fatalf("watch did not end when the group converged:\n%s", out)
	}
	if !strings.HasSuffix(out.String(), "rollout v7: 2/2 converged, 0 failed, 0 pending, 0 offline\n") {
		t.Errorf("the last line should show the rollout done:\n%s", out)
	}
	if strings.Contains(out.String(), "pi-003") {
		t.Errorf("pi-003 is not in the group:\n%s", out)
	}

	// The fans never converge: exit 3, naming who is pending.
	code, _, stderr := tern(t, "watch", "--broker", url, "--fleet", "cli", "--group", "fans", "--version", "7", "--until-converged", "--timeout", "1s")
	if code != cli.ExitTimeout || !strings.Contains(stderr, "0/1 converged") || !strings.Contains(stderr, "pending: pi-003") {
		t.Errorf("watch of a rollout that does not converge: exit %d, %q", code, stderr)
	}
}

// Events delivered more than once (QoS 1, an outbox sending again after a
// reconnect) are printed once, by (device, seq); unnumbered ones always.
func TestWatchDeduplicatesEvents(t *testing.T) {
	url := fleettest.Embedded(t)
	startDevice(t, url, "pi-001").report(t, converged(1))
	ctx, cancel := context.WithCancel(t.Context())
	out := newSyncBuffer()
	done := make(chan int, 1)
	go func() {
		done <- cli.MainContext(ctx, []string{"watch", "--broker", url, "--fleet", "cli", "--json"}, out, out)
	}()
	out.waitFor(t, `"type":"state"`) // subscribed

	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("replayer"))
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer c.Disconnect(100)
	for i, seq := range []uint64{1, 2, 2, 1, 3, 0, 0, 2, 4} {
		e := fmt.Sprintf(`{"format":1,"device":"pi-001","seq":%d,"id":"e%d","kind":"task.done","message":"n%d"}`, seq, i, i)
		if tok := c.Publish(fleet.Topics{Fleet: "cli"}.Events("pi-001"), 1, false, e); !tok.WaitTimeout(wait) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	out.waitFor(t, `"seq":4`)
	cancel()
	if code := <-done; code != cli.ExitOK {
		t.Fatalf("watch: exit %d\n%s", code, out)
	}
	var seqs []string
	for line := range strings.SplitSeq(out.String(), "\n") {
		var e struct {
			Type    string `json:"type"`
			Seq     uint64 `json:"seq"`
			Message string `json:"message"`
		}
		if line == "" {
			continue
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("watch --json printed a line that is not JSON: %q", line)
		}
		if e.Type == "event" {
			seqs = append(seqs, fmt.Sprintf("%d/%s", e.Seq, e.Message))
		}
	}
	if got, want := strings.Join(seqs, " "), "1/n0 2/n1 3/n4 0/n5 0/n6 4/n8"; got != want {
		t.Errorf("events printed: %s\nwant           %s", got, want)
	}
}

// syncBuffer is an io.Writer that a test can wait on.
type syncBuffer struct {
	mu      sync.Mutex
	b       strings.Builder
	changed chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{changed: make(chan struct{}, 1)} }

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) waitFor(t *testing.T, sub string) {
	t.Helper()
	deadline := time.After(wait)
	for !strings.Contains(s.String(), sub) {
		select {
		case <-s.changed:
		case <-deadline:
			t.Fatalf("no %q in the output within %v:\n%s", sub, wait, s)
		}
	}
}

// An error of several lines (every plan.failed explanation has them) is one
// line of the table: its first, marked as cut, with a note on stderr;
// --json has it whole.
func TestStatusMultiLineError(t *testing.T) {
	url := fleettest.Embedded(t)
	const why = "plan: no plan reaches the target\n  /relays/fan/on: is absent, target true\n    relay.set (at /relays/fan): condition does not hold"
	startDevice(t, url, "pi-001").report(t, runtime.Status{TargetVersion: 3, Phase: runtime.PhaseFailed, Error: why, State: json.RawMessage(`{}`)})
	startDevice(t, url, "pi-002").report(t, runtime.Status{TargetVersion: 3, Phase: runtime.PhaseFailed,
		Error: "relay: " + strings.Repeat("ü", 70), State: json.RawMessage(`{}`)})
	flags := []string{"--broker", url, "--fleet", "cli"}

	code, out, errOut := tern(t, append([]string{"status"}, flags...)...)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != cli.ExitNotConverged || len(lines) != 3 {
		t.Fatalf("status: exit %d, %d lines; want exit 4, a header and two rows:\n%s", code, len(lines), out)
	}
	if !strings.Contains(lines[1], "plan: no plan reaches the target ...") || strings.Contains(out, "relay.set") {
		t.Errorf("the row of pi-001 does not show the first line of its error, marked as cut:\n%s", out)
	}
	cut := "relay: " + strings.Repeat("ü", 50) + "..." // 60 characters, not bytes: no rune is split
	if !strings.Contains(lines[2], cut) {
		t.Errorf("the row of pi-002 does not show its error cut to 60 characters (%q):\n%s", cut, out)
	}
	for _, row := range lines[1:] {
		if f := strings.Fields(row); f[len(f)-1] != "-" { // MODULES: none reported
			t.Errorf("a row does not end in its MODULES column:\n%s", out)
		}
	}
	if !strings.Contains(errOut, "--json shows them whole") {
		t.Errorf("stderr does not say where the whole error is: %q", errOut)
	}

	_, out, _ = tern(t, append([]string{"status", "--json", "--device", "pi-001"}, flags...)...)
	var rows []struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 1 || rows[0].Error != why {
		t.Errorf("status --json: %v, %+v; want the whole error", err, rows)
	}
}

// tern watch --pushed V follows a push of version V to one group or
// device: each device must reach the combined version V makes with the
// targets retained for its other sources, which tern reads and adds up.
func TestWatchPushed(t *testing.T) {
	url := fleettest.Embedded(t)
	flags := []string{"--broker", url, "--fleet", "cli"}
	push := func(args ...string) string {
		t.Helper()
		code, out, errOut := tern(t, append(append([]string{"push"}, flags...), args...)...)
		if code != cli.ExitOK {
			t.Fatalf("push %v: exit %d, %s", args, code, errOut)
		}
		return out
	}
	push("--group", "floor-2", "--version", "20", `{"relays":{"fan":true}}`)
	push("--device", "pi-001", "--version", "100", `{"relays":{"fan":false}}`)
	a := startDevice(t, url, "pi-001", "heaters")
	b := startDevice(t, url, "pi-002", "heaters", "floor-2")
	startDevice(t, url, "pi-003", "fans").report(t, converged(5))
	a.report(t, converged(100))
	b.report(t, converged(20))

	// tern push says how to follow the push, not to add versions by hand.
	out := push("--group", "heaters", "--version", "7", `{"relays":{"heater":true}}`)
	if want := "tern watch --fleet cli --group heaters --pushed 7 --until-converged"; !strings.Contains(out, want) {
		t.Errorf("push to a group does not say %q:\n%s", want, out)
	}

	// pi-001 must reach 7+100, pi-002 7+20: their reports, 100 and 20, are
	// above 7 but converge neither.
	watched := newSyncBuffer()
	done := make(chan int, 1)
	go func() {
		done <- cli.MainContext(t.Context(), append([]string{"watch", "--group", "heaters", "--pushed", "7", "--until-converged", "--json", "--timeout", wait.String()}, flags...), watched, watched)
	}()
	const first = `{"type":"progress","scope":"group/heaters","version":7,"total":2,"converged":0,"failed":0,"pending":2,"offline":0}`
	watched.waitFor(t, `"type":"progress"`)
	if line := progressLines(watched.String())[0]; line != first {
		t.Errorf("first progress line:\n%s\nwant\n%s", line, first)
	}
	b.report(t, converged(27))
	watched.waitFor(t, `"converged":1,"failed":0,"pending":1`)
	a.report(t, converged(107))
	select {
	case code := <-done:
		if code != cli.ExitOK {
			t.Fatalf("watch: exit %d\n%s", code, watched)
		}
	case <-time.After(wait):
		t.Fatalf("watch did not end when the group converged:\n%s", watched)
	}
	lines := progressLines(watched.String())
	if last := lines[len(lines)-1]; !strings.Contains(last, `"converged":2,"failed":0,"pending":0`) {
		t.Errorf("the last line should show the rollout done: %s", last)
	}
	for _, l := range lines[:len(lines)-1] {
		if strings.Contains(l, `"converged":2`) {
			t.Errorf("a device counted as converged below its combined version:\n%s", watched)
		}
	}

	// One device: pi-001's own target at 101 would make 101+7 with its
	// group's, above the 107 it reports.
	code, _, errOut := tern(t, append([]string{"watch", "--device", "pi-001", "--pushed", "100", "--until-converged", "--timeout", wait.String()}, flags...)...)
	if code != cli.ExitOK {
		t.Errorf("watch --device pi-001 --pushed 100: exit %d, %s", code, errOut)
	}
	code, _, errOut = tern(t, append([]string{"watch", "--device", "pi-001", "--pushed", "101", "--until-converged", "--timeout", "3s"}, flags...)...)
	if code != cli.ExitTimeout || !strings.Contains(errOut, "did not report its target reached") {
		t.Errorf("watch --device pi-001 --pushed 101: exit %d, %q; want a timeout", code, errOut)
	}
	if strings.Contains(errOut, "it must reach") && !strings.Contains(errOut, "it must reach combined version 108: 101 pushed to device/pi-001") {
		t.Errorf("the timeout names the wrong combined version: %q", errOut)
	}
}

// A device reporting more groups than tern adds up (2047, the most whose
// versions always sum) stays pending and makes tern read nothing; at 2047
// it is counted.
func TestWatchPushedGroupsBound(t *testing.T) {
	url := fleettest.Embedded(t)
	flags := []string{"--broker", url, "--fleet", "cli"}
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("reporter"))
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer c.Disconnect(100)
	for _, n := range []int{2047, 2048} {
		groups := []string{"heaters"}
		for i := 1; i < n; i++ {
			groups = append(groups, fmt.Sprintf("g%d", i))
		}
		id := fmt.Sprintf("pi-%d", n)
		report, _ := json.Marshal(map[string]any{"format": 1, "device": id, "groups": groups, "target_version": 7, "converged": true, "phase": "idle", "state": map[string]any{}})
		if tok := c.Publish(fleet.Topics{Fleet: "cli"}.State(id), 1, true, report); !tok.WaitTimeout(wait) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	code, _, errOut := tern(t, append([]string{"watch", "--device", "pi-2047", "--pushed", "7", "--until-converged", "--timeout", wait.String()}, flags...)...)
	if code != cli.ExitOK {
		t.Errorf("a device of 2047 groups, none with a target: exit %d, %s", code, errOut)
	}
	code, _, errOut = tern(t, append([]string{"watch", "--device", "pi-2048", "--pushed", "7", "--until-converged", "--timeout", "2s"}, flags...)...)
	if code != cli.ExitTimeout || !strings.Contains(errOut, "it reports 2048 groups, and tern adds up the versions of at most 2047") {
		t.Errorf("a device of 2048 groups: exit %d, %q; want a timeout that says why", code, errOut)
	}
}

// progressLines returns the progress lines of tern watch --json output.
func progressLines(out string) []string {
	var lines []string
	for l := range strings.SplitSeq(out, "\n") {
		if strings.HasPrefix(l, `{"type":"progress"`) {
			lines = append(lines, l)
		}
	}
	return lines
}
