package daemon_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/internal/daemon"
	"github.com/tern-iot/tern/internal/testbound"
	"github.com/tern-iot/tern/internal/version"
)

// freeLoopbackPort is a port on 127.0.0.1 nobody listens on now.
func freeLoopbackPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// promLine is one sample line of Prometheus's text format.
var promLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*\})? (\S+)$`)

// parseProm reads Prometheus's text format line by line: every line a
// HELP, a TYPE or a sample that parses. It returns the samples by their
// name and labels as written.
func parseProm(t *testing.T, b []byte) map[string]string {
	t.Helper()
	samples := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		if strings.HasPrefix(l, "# HELP ") || strings.HasPrefix(l, "# TYPE ") {
			continue
		}
		m := promLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("line %d does not parse as a sample: %q", n, l)
		}
		samples[m[1]+m[2]] = m[3]
	}
	return samples
}

// A real ternd on a simulated board and a real broker reports what it
// is: its inventory, the facts of its ternd.yaml and of a module's facts
// sensor, a metrics summary whose counts are what it did, and the plan
// it ran as a graph; its node_exporter textfile parses and holds the
// same counts, and so does GET /metrics on loopback.
func TestObservability(t *testing.T) {
	t.Parallel()
	url := fleettest.Mosquitto(t)
	k := newKeys(t)
	v := watchFleet(t, url)
	dir := t.TempDir()
	facts := filepath.Join(dir, "facts.wasm")
	if err := os.WriteFile(facts, signedModule(t, "facts-1.0.0", k.trusted), 0o644); err != nil {
		t.Fatal(err)
	}
	textfile, listen := filepath.Join(dir, "ternd.prom"), freeLoopbackPort(t)
	d := &ternd{t: t, gpio: sim.NewGPIO("GPIO17", "GPIO27"), log: fleettest.Logger(t, "ternd")}
	d.cfg = daemon.Config{
		Device: "pi-001", Fleet: "rel", Broker: url, Board: "sim", DataDir: filepath.Join(dir, "data"), Groups: []string{"north"},
		TrustedKeys: []string{k.pub}, ClockSync: "assume",
		Modules: []daemon.ModuleConfig{evilModule(t, k), {Name: "facts", Path: facts}},
		Facts:   map[string]string{"site": "mill", "room": "4"},
		Metrics: daemon.MetricsConfig{Textfile: textfile, Interval: daemon.Duration(time.Second), Listen: listen},
	}
	d.start()

	v.push(t, 3, `{"fixed":{"a":true,"b":true}}`, k.trusted)
	wantFacts := map[string]string{"site": "mill", "room": "4", "hw_rev": "C"}
	v.state(t, "target 3 reached, with the facts", func(s fleet.StateReport) bool {
		return s.Converged && s.TargetVersion == 3 && fmt.Sprint(s.Facts) == fmt.Sprint(wantFacts)
	})
	s := v.last
	ag := s.Agent
	if ag == nil || ag.Version != version.Version || ag.Arch != version.Arch() || ag.Store == "" || ag.Kernel == "" ||
		ag.Started.IsZero() || time.Since(ag.Started) > time.Hour || ag.DiskFree == 0 || ag.RSS < 1<<20 || ag.OutboxDepth < 0 {
		t.Errorf("agent block %+v: want this build's version and arch, a store, a kernel, a start within the hour, free disk, RSS over 1 MiB", ag)
	}
	if _, err := os.Stat("/proc/device-tree/model"); err != nil && ag != nil && ag.Board != "sim" {
		t.Errorf("board %q on a machine without a device tree, want the simulated board's name", ag.Board)
	}
	m := s.Metrics
	if m == nil || m.Plans["found"] < 1 || m.Tasks["evil.poke done"] != 2 || m.Calls["evil"].Count == 0 || m.Calls["facts"].Count == 0 || m.LastConverged.IsZero() {
		t.Errorf("metrics summary %+v: want a plan found, evil.poke done 2, calls into evil and facts, a last convergence", m)
	}
	if g := s.Plan; g == nil || g.TargetVersion != 3 || len(g.Tasks) != 2 || g.Tasks[0].State != "done" || g.Tasks[1].State != "done" || g.Tasks[0].Job != "poke" {
		t.Errorf("plan graph %+v: want target 3's 2 poke tasks, done", s.Plan)
	}

	// The textfile is written every second: wait for one with the tasks.
	tasks := `ternd_tasks_total{module="evil",job="poke",outcome="done"}`
	var file map[string]string
	testbound.WaitFor(t, "the textfile with the plan's tasks", func() bool {
		b, err := os.ReadFile(textfile)
		if err != nil {
			return false
		}
		file = parseProm(t, b)
		return file[tasks] == "2"
	})
	resp, err := http.Get("http://" + listen + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("GET /metrics: %s, %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	scraped := parseProm(t, body)
	info := fmt.Sprintf(`ternd_info{version=%q,arch=%q,board=%q}`, ag.Version, ag.Arch, ag.Board)
	for _, name := range []string{tasks, `ternd_plans_total{outcome="found"}`, `ternd_plans_total{outcome="failed"}`, `ternd_converged`,
		`ternd_target_version`, `ternd_refusals_total{kind="target"}`, info, `ternd_start_time_seconds`} {
		if scraped[name] == "" || scraped[name] != file[name] {
			t.Errorf("%s: /metrics says %q, the textfile %q; want the same, present", name, scraped[name], file[name])
		}
	}
	if scraped[tasks] != "2" || scraped["ternd_converged"] != "1" || scraped["ternd_target_version"] != "3" ||
		scraped[`ternd_plans_total{outcome="found"}`] != fmt.Sprint(m.Plans["found"]) {
		t.Errorf("/metrics: tasks %s, converged %s, target version %s, plans found %s; want 2, 1, 3, %d",
			scraped[tasks], scraped["ternd_converged"], scraped["ternd_target_version"], scraped[`ternd_plans_total{outcome="found"}`], m.Plans["found"])
	}
	for _, name := range []string{`ternd_module_call_seconds_count{module="evil"}`, `ternd_module_call_seconds_bucket{module="facts",le="+Inf"}`,
		"ternd_resident_memory_bytes", "ternd_disk_free_bytes", "ternd_outbox_depth", "ternd_reconnects_total", "ternd_last_converged_timestamp_seconds"} {
		if scraped[name] == "" {
			t.Errorf("/metrics has no %s", name)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
}
