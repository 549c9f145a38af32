package exporter_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/internal/dashboard"
	"github.com/tern-iot/tern/internal/exporter"
	"github.com/tern-iot/tern/internal/promtest"
	"github.com/tern-iot/tern/internal/testbound"
	"github.com/tern-iot/tern/runtime/api"
)

var topics = fleet.Topics{Fleet: "demo"}

var brokers = map[string]func(testing.TB) string{
	"embedded":  fleettest.Embedded,
	"mosquitto": fleettest.Mosquitto,
}

func forEachBroker(t *testing.T, test func(t *testing.T, url string)) {
	t.Parallel()
	for name, start := range brokers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, start(t))
		})
	}
}

func startDevice(t *testing.T, url, id string) *fleet.Device {
	t.Helper()
	d, err := fleet.NewDevice(fleet.DeviceOptions{Broker: url, Topics: topics, Device: id, Groups: []string{"heaters"},
		Store: fleettest.Store(t), ConnectTimeout: 2 * time.Second, MaxRetryInterval: 200 * time.Millisecond,
		Logger: fleettest.Logger(t, "device "+id)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { cancel(); <-done }) })
	testbound.WaitFor(t, "device "+id+" connected", d.Connected)
	return d
}

func startExporter(t *testing.T, url, data string) *exporter.Exporter {
	t.Helper()
	e, err := exporter.Start(t.Context(), exporter.Options{
		Operator: fleet.OperatorOptions{Broker: url, Topics: topics, ConnectTimeout: 2 * time.Second},
		DataDir:  data, Logger: fleettest.Logger(t, "exporter"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// status is a converged device's state report.
func status(version uint64) api.Status {
	return api.Status{Time: time.Now(), TargetVersion: version, Converged: true, Phase: api.PhaseIdle,
		State:    json.RawMessage(`{"relays":{"heater":true}}`),
		Agent:    &api.AgentInfo{Version: "1.4.0", Arch: "arm64", Board: "Raspberry Pi 4 Model B", OutboxDepth: 3, Store: "badger"},
		Rollouts: map[string]api.RolloutStatus{"relay-20261206": {Wave: 1, Phase: api.RolloutSucceeded, Since: time.Now()}},
	}
}

func publishRetained(t *testing.T, url, topic string, payload []byte) {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("test-raw").SetCleanSession(true))
	if tok := c.Connect(); !tok.WaitTimeout(testbound.Hang) || tok.Error() != nil {
		t.Fatalf("raw client: %v", tok.Error())
	}
	defer c.Disconnect(100)
	if tok := c.Publish(topic, 1, true, payload); !tok.WaitTimeout(testbound.Hang) || tok.Error() != nil {
		t.Fatalf("raw publish: %v", tok.Error())
	}
}

func jobStatus(device, id, phase string) []byte {
	b, _ := json.Marshal(fleet.JobStatusReport{Format: fleet.ReportFormat, Device: device,
		JobStatus: api.JobStatus{Time: time.Now(), ID: id, Scope: "group/heaters/job/" + id, Version: 1, Module: "relay", Command: "pulse", Phase: phase}})
	return b
}

// The exporter keeps what devices report: states, presence, job
// statuses and events, as dashboard.Source shows them; Changes names the
// devices that change.
func TestExporterFollowsFleet(t *testing.T) {
	forEachBroker(t, func(t *testing.T, url string) {
		e := startExporter(t, url, t.TempDir())
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		changes := e.Changes(ctx)
		d1 := startDevice(t, url, "pi-001")
		d2 := startDevice(t, url, "pi-002")
		if err := d1.PublishState(t.Context(), status(7)); err != nil {
			t.Fatal(err)
		}
		s := status(6)
		s.Converged, s.Phase, s.Error = false, api.PhaseFailed, "plan: no plan"
		if err := d2.PublishState(t.Context(), s); err != nil {
			t.Fatal(err)
		}
		for i, d := range []*fleet.Device{d1, d2, d1} {
			if err := d.PublishEvent(t.Context(), api.Event{ID: fmt.Sprint(i), Time: time.Now(), Kind: api.EventConverged}); err != nil {
				t.Fatal(err)
			}
		}
		publishRetained(t, url, topics.JobStatus("pi-001", "job-1"), jobStatus("pi-001", "job-1", "succeeded"))
		publishRetained(t, url, topics.JobStatus("pi-002", "job-1"), jobStatus("pi-002", "job-1", "running"))

		testbound.WaitFor(t, "both devices' states, presence, jobs and events", func() bool {
			ds := e.Devices()
			if len(ds) != 2 {
				return false
			}
			for _, d := range ds {
				if !d.Online || d.State == nil || len(d.Jobs) != 1 {
					return false
				}
			}
			evs, err := e.Events(t.Context(), dashboard.EventQuery{})
			return err == nil && len(evs) == 3
		})
		d, ok := e.Device("pi-002")
		if !ok || d.State.Error != "plan: no plan" || d.State.TargetVersion != 6 || d.Jobs["job-1"].Phase != "running" || d.Seen.IsZero() {
			t.Errorf("pi-002: %+v", d)
		}
		evs, _ := e.Events(t.Context(), dashboard.EventQuery{Device: "pi-001"})
		if len(evs) != 2 || evs[0].Seq != 1 || evs[1].Seq != 2 {
			t.Errorf("pi-001's events: %+v", evs)
		}
		seen := map[string]bool{}
		for !seen["pi-001"] || !seen["pi-002"] {
			select {
			case id := <-changes:
				seen[id] = true
			case <-time.After(testbound.Hang):
				t.Fatalf("Changes named only %v", seen)
			}
		}

		m := get(t, e, "/metrics")
		for _, name := range exporter.MetricNames {
			if !strings.Contains(m, "# TYPE "+name+" ") {
				t.Errorf("/metrics has no family %s", name)
			}
		}
		for _, want := range []string{
			`tern_devices 2`,
			`tern_device_info{device="pi-001",version="1.4.0",arch="arm64",board="Raspberry Pi 4 Model B"} 1`,
			`tern_device_online{device="pi-002"} 1`,
			`tern_device_converged{device="pi-001"} 1`,
			`tern_device_converged{device="pi-002"} 0`,
			`tern_device_target_version{device="pi-001"} 7`,
			`tern_device_outbox_depth{device="pi-001"} 3`,
			`tern_rollout_devices{rollout="relay-20261206",phase="succeeded"} 2`,
			`tern_job_devices{job="job-1",phase="running"} 1`,
			`tern_job_devices{job="job-1",phase="succeeded"} 1`,
			`tern_events_total{kind="converged"} 3`,
			`tern_exporter_events_stored 3`,
		} {
			if !strings.Contains(m, want+"\n") {
				t.Errorf("/metrics lacks %s:\n%s", want, m)
			}
		}
		var ans exporter.EventsResponse
		if err := json.Unmarshal([]byte(get(t, e, "/api/events?device=pi-002&since=1h&kind=converged,task.done")), &ans); err != nil || len(ans.Events) != 1 || ans.More {
			t.Errorf("/api/events: %+v %v", ans, err)
		}
	})
}

func get(t *testing.T, e *exporter.Exporter, path string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	e.Handler(nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// The dashboard is mounted at /, beside the exporter's own endpoints.
func TestHandlerMountsDashboard(t *testing.T) {
	url := fleettest.Embedded(t)
	e := startExporter(t, url, t.TempDir())
	ui := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "dashboard "+r.URL.Path) })
	srv := httptest.NewServer(e.Handler(ui))
	defer srv.Close()
	for path, want := range map[string]string{"/": "dashboard /", "/device/pi-001": "dashboard /device/pi-001", "/healthz": "ok\n"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != want {
			t.Errorf("GET %s: %q, want %q", path, b, want)
		}
	}
	resp, _ := http.Get(srv.URL + "/api/events?since=yesterday")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a bad since: %s", resp.Status)
	}
	resp.Body.Close()
}

// The acceptance test of the metrics: a real Prometheus scrapes the
// exporter, and its query API returns the fleet's series with the right
// values. promtest.Start takes more targets (a device's /metrics).
func TestPrometheusScrapesExporter(t *testing.T) {
	url := fleettest.Embedded(t)
	e := startExporter(t, url, t.TempDir())
	srv := httptest.NewServer(e.Handler(nil))
	defer srv.Close()
	d := startDevice(t, url, "pi-001")
	if err := d.PublishState(t.Context(), status(7)); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		kind := api.EventTaskDone
		if i > 0 {
			kind = api.EventConverged
		}
		if err := d.PublishEvent(t.Context(), api.Event{ID: fmt.Sprint(i), Time: time.Now(), Kind: kind, TargetVersion: 7}); err != nil {
			t.Fatal(err)
		}
	}
	prom := promtest.Start(t, srv.URL+"/metrics")
	prom.WaitFor(t, `tern_device_converged{device="pi-001"}`, 1)
	prom.WaitFor(t, `tern_device_target_version{device="pi-001"}`, 7)
	prom.WaitFor(t, `tern_device_online{device="pi-001"}`, 1)
	prom.WaitFor(t, `tern_events_total{kind="converged"}`, 2)
	prom.WaitFor(t, `tern_events_total{kind="task.done"}`, 1)
	info := prom.WaitFor(t, `tern_device_info{device="pi-001"}`, 1)
	if info.Labels["version"] != "1.4.0" || info.Labels["arch"] != "arm64" || info.Labels["job"] != "target0" {
		t.Errorf("tern_device_info's labels: %v", info.Labels)
	}
	prom.WaitFor(t, `sum(tern_rollout_devices{phase="succeeded"})`, 1)

	// A new version pushed and reached shows in the next scrapes.
	if err := d.PublishState(t.Context(), status(8)); err != nil {
		t.Fatal(err)
	}
	prom.WaitFor(t, `tern_device_target_version{device="pi-001"}`, 8)

	// Every expression of the Grafana dashboard is PromQL this
	// Prometheus evaluates.
	for where, expr := range dashboardExprs(t) {
		if _, err := prom.Query(t.Context(), grafanaToPromQL.Replace(expr)); err != nil {
			t.Errorf("dashboard %s: %v", where, err)
		}
	}
}

// The devices kept are bounded (Options.MaxDevices): reports of devices
// beyond the bound are not kept and are counted; the events of every
// device are stored.
func TestExporterMaxDevices(t *testing.T) {
	url := fleettest.Embedded(t)
	e, err := exporter.Start(t.Context(), exporter.Options{
		Operator: fleet.OperatorOptions{Broker: url, Topics: topics, ConnectTimeout: 2 * time.Second},
		DataDir:  t.TempDir(), MaxDevices: 2, Logger: fleettest.Logger(t, "exporter"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	for _, id := range []string{"pi-001", "pi-002", "pi-003"} {
		st, err := json.Marshal(fleet.StateReport{Format: fleet.ReportFormat, Device: id, Status: status(1)})
		if err != nil {
			t.Fatal(err)
		}
		publishRetained(t, url, topics.State(id), st)
	}
	d := startDevice(t, url, "pi-003")
	if err := d.PublishEvent(t.Context(), api.Event{ID: "x", Time: time.Now(), Kind: api.EventConverged}); err != nil {
		t.Fatal(err)
	}
	testbound.WaitFor(t, "the event of a device beyond the bound stored", func() bool {
		evs, err := e.Events(t.Context(), dashboard.EventQuery{Device: "pi-003"})
		return err == nil && len(evs) == 1
	})
	testbound.WaitFor(t, "a device refused", func() bool {
		rec := httptest.NewRecorder()
		e.Handler(nil).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return strings.Contains(rec.Body.String(), "\ntern_exporter_devices_refused_total ") &&
			!strings.Contains(rec.Body.String(), "\ntern_exporter_devices_refused_total 0\n")
	})
	if n := len(e.Devices()); n != 2 {
		t.Fatalf("%d devices kept, want the bound, 2", n)
	}
}
