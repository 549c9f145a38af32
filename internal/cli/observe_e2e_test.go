package cli_test

import (
	"context"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tern-iot/tern/boards"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/internal/cli"
	"github.com/tern-iot/tern/internal/daemon"
	"github.com/tern-iot/tern/internal/dashboard/dashtest"
	"github.com/tern-iot/tern/internal/promtest"
	"github.com/tern-iot/tern/internal/wasmbuild"
	"github.com/tern-iot/tern/runtime/api"
)

// The dashboard end to end: three real ternds run the thermostat module on
// simulated boards whose rooms warm only when the test steps them, through
// the embedded broker; tern exporter follows them and serves the
// dashboard, which a real headless chromium shows. The fleet table lists
// the three; a group target pushed with tern push turns them pending on
// screen (the rooms are cold), a device's page draws the plan it runs as
// a graph, and once the rooms warm the rows turn converged, all without
// the page reloading. Screenshots are artifacts (dashtest.ArtifactDir).
func TestDashboardEndToEnd(t *testing.T) {
	t.Parallel()
	broker := fleettest.Embedded(t)
	wasm, err := wasmbuild.Cached("github.com/tern-iot/tern/plugins/thermostat")
	if err != nil {
		t.Fatal(err)
	}
	mod := filepath.Join(t.TempDir(), "thermostat.wasm")
	if err := os.WriteFile(mod, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	board, err := boards.Lookup("sim")
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	ids := []string{"th-001", "th-002", "th-003"}
	var rooms []*sim.Board
	for _, id := range ids {
		cold, ambient := 18.0, 15.0
		sb, err := sim.NewBoard(sim.BoardSpec{
			I2C:   []sim.ChipSpec{{At: "i2c1:0x48", Chip: "tmp102", Celsius: &cold}},
			Rooms: []sim.RoomSpec{{Heater: "GPIO17", Sensor: "i2c1:0x48", Ambient: &ambient, Heat: 2, Loss: 0.1}},
		}, board.Lines(), nil)
		if err != nil {
			t.Fatal(err)
		}
		rooms = append(rooms, sb)
		cfg := daemon.Config{Device: id, Fleet: "cli", Broker: broker, DataDir: t.TempDir(), CacheDir: cache, Board: "sim",
			Groups: []string{"heaters"}, ClockSync: "assume",
			Modules: []daemon.ModuleConfig{{Name: "thermostat", Path: mod,
				Config: map[string]any{"sensor": map[string]any{"bus": "i2c1", "address": 0x48}, "heater": "GPIO17"},
				Grants: api.Grants{GPIO: []string{"GPIO17"}, I2C: []string{"i2c1:0x48"}}}}}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- daemon.Run(ctx, cfg, &daemon.Hardware{GPIO: sb.GPIO, I2C: sb.I2C}, fleettest.Logger(t, id))
		}()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("ternd %s: %v", id, err)
			}
		})
	}
	exp := startExporter(t, broker, t.TempDir())

	browser := dashtest.Browser(t)
	tab := dashtest.Tab(t, browser)
	must := func(err error) {
		t.Helper()
		if err != nil {
			dashtest.Screenshot(tab, t, "failed")
			t.Fatal(err)
		}
	}
	status := func(id string) string { return `tr[data-device="` + id + `"] [data-testid="status"]` }
	must(chromedp.Do(tab, chromedp.Navigate(exp.url+"/")))
	must(dashtest.WaitJS(tab, `window.ternDash && window.ternDash.ready`))
	must(dashtest.WaitCount(tab, `#fleet-body tr`, len(ids)))
	for _, id := range ids {
		must(dashtest.WaitText(tab, `tr[data-device="`+id+`"]`, "online"))
		must(dashtest.WaitText(tab, status(id), "no-target"))
	}
	// A marker a reload would lose, and every status each row showed (a
	// device can pass through pending quickly on a fast machine, or turn
	// failed and back while its room stays cold on a slow one).
	if _, err := dashtest.Eval[chromedp.Void](tab, `window.__loadedOnce = 'yes';
		window.__seen = {};
		window.__scan = () => document.querySelectorAll('#fleet-body tr[data-device]').forEach((tr) => {
			const s = tr.querySelector('[data-testid="status"]');
			const v = tr.cells[4].textContent;
			const seen = (window.__seen[tr.dataset.device] ||= []);
			if (s && !seen.includes(s.textContent + ' v' + v)) seen.push(s.textContent + ' v' + v);
		});
		window.__scan();
		new MutationObserver(window.__scan).observe(document.querySelector('#fleet-body'), {subtree: true, childList: true, characterData: true});`); err != nil {
		t.Fatal(err)
	}
	dashtest.Screenshot(tab, t, "01-fleet")

	if code, out, errOut := tern(t, "push", "--broker", broker, "--fleet", "cli", "--group", "heaters", "--version", "5", `{"room":{"temp":21}}`); code != cli.ExitOK {
		t.Fatalf("push: %d %s %s", code, out, errOut)
	}
	for _, id := range ids {
		must(dashtest.WaitJS(tab, `(window.__seen['`+id+`'] || []).includes('pending v5')`))
	}
	dashtest.Screenshot(tab, t, "02-pending")

	// th-001's page: the plan it runs, drawn (the heater switched on, and
	// the wait for the room).
	page := dashtest.Tab(t, browser)
	must(chromedp.Do(page, chromedp.Navigate(exp.url+"/#/device/th-001")))
	must(dashtest.WaitJS(page, `window.ternDash && window.ternDash.ready`))
	must(dashtest.WaitJS(page, `document.querySelectorAll('[data-testid="plan-node"]').length > 0`))
	dashtest.Screenshot(page, t, "03-device-plan")

	// The rooms warm: every row turns converged on the page that never
	// reloaded.
	warm, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-warm.Done():
				return
			case <-tick.C:
				for _, r := range rooms {
					r.Step(100 * time.Millisecond)
				}
			}
		}
	}()
	for _, id := range ids {
		must(dashtest.WaitJS(tab, `(() => { const e = document.querySelector('`+status(id)+`'); return !!e && e.textContent === 'converged'; })()`))
	}
	must(dashtest.WaitJS(tab, `document.querySelector('#count-converged').textContent === '`+strconv.Itoa(len(ids))+`'`))
	if got, err := dashtest.Eval[string](tab, `window.__loadedOnce || 'gone: the page reloaded'`); err != nil || got != "yes" {
		t.Errorf("the page's marker: %q, %v; want it kept (no reload)", got, err)
	}
	seen, err := dashtest.Eval[map[string][]string](tab, `window.__seen`)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("statuses each row showed: %v", seen)
	dashtest.Screenshot(tab, t, "04-converged")
	must(dashtest.WaitJS(page, `document.querySelectorAll('[data-testid="plan-node"][data-state="done"]').length > 0`))
	dashtest.Screenshot(page, t, "05-device-done")
}

// The metrics' acceptance test: a real Prometheus scrapes tern exporter
// and a real ternd's loopback /metrics, and its query API returns the
// fleet's series (the exporter's) and the device's own with the values
// of what happened: one target pushed with tern push, reached by two
// relay tasks.
func TestPrometheusScrapesFleetAndDevice(t *testing.T) {
	t.Parallel()
	broker := fleettest.Embedded(t)
	board, err := boards.Lookup("sim")
	if err != nil {
		t.Fatal(err)
	}
	sb, err := sim.NewBoard(sim.BoardSpec{}, board.Lines(), nil)
	if err != nil {
		t.Fatal(err)
	}
	listen := fleettest.FreeAddr(t)
	cfg := daemon.Config{Device: "pi-031", Fleet: "cli", Broker: broker, DataDir: t.TempDir(), Board: "sim", ClockSync: "assume",
		Modules: []daemon.ModuleConfig{{Name: "relay", Path: relayFile(t),
			Config: map[string]any{"lines": map[string]string{"fan": "GPIO17", "heater": "GPIO27"}},
			Grants: api.Grants{GPIO: []string{"GPIO17", "GPIO27"}}}},
		Metrics: daemon.MetricsConfig{Listen: listen}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, cfg, &daemon.Hardware{GPIO: sb.GPIO, I2C: sb.I2C}, fleettest.Logger(t, "pi-031"))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ternd: %v", err)
		}
	})
	exp := startExporter(t, broker, t.TempDir())
	if code, out, errOut := tern(t, "push", "--broker", broker, "--fleet", "cli", "--device", "pi-031", "--version", "12", `{"relays":{"fan":true,"heater":true}}`); code != cli.ExitOK {
		t.Fatalf("push: %d %s %s", code, out, errOut)
	}
	prom := promtest.Start(t, exp.url+"/metrics", "http://"+listen+"/metrics")
	// The fleet, as the exporter follows it (job target0).
	prom.WaitFor(t, `tern_device_converged{device="pi-031"}`, 1)
	prom.WaitFor(t, `tern_device_target_version{device="pi-031"}`, 12)
	prom.WaitFor(t, `tern_device_online{device="pi-031"}`, 1)
	prom.WaitFor(t, `tern_events_total{kind="task.done"}`, 2)
	// The device, scraped on loopback (job target1).
	prom.WaitFor(t, `ternd_converged{job="target1"}`, 1)
	prom.WaitFor(t, `ternd_target_version{job="target1"}`, 12)
	prom.WaitFor(t, `sum(ternd_tasks_total{job="target1",module="relay",outcome="done"})`, 2)
	prom.WaitFor(t, `ternd_plans_total{job="target1",outcome="found"}`, 1)
	prom.WaitFor(t, `ternd_outbox_depth{job="target1"}`, 0)
	prom.WaitFor(t, `sum(ternd_module_call_seconds_count{job="target1",module="relay"}) > bool 0`, 1)
	info := prom.WaitFor(t, `ternd_info{job="target1"}`, 1)
	if info.Labels["arch"] != goruntime.GOARCH || info.Labels["board"] != "sim" {
		t.Errorf("ternd_info's labels: %v", info.Labels)
	}
}
