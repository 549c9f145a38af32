package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/internal/cli"
	"github.com/tern-iot/tern/runtime/api"
)

// runningExporter is tern exporter run through the CLI's entry point.
type runningExporter struct {
	url  string // http://127.0.0.1:port
	out  *syncBuffer
	stop func() // interrupts it and checks it exited 0
}

var servingRE = regexp.MustCompile(`serving (http://[0-9.:]+) `)

func startExporter(t *testing.T, broker, data string, extra ...string) *runningExporter {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, errOut := newSyncBuffer(), newSyncBuffer()
	args := append([]string{"exporter", "--broker", broker, "--fleet", "cli", "--data", data, "--listen", "127.0.0.1:0", "-v"}, extra...)
	done := make(chan int, 1)
	go func() { done <- cli.MainContext(ctx, args, out, errOut) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case code := <-done:
			if code != cli.ExitOK {
				t.Errorf("tern exporter exited %d; its log:\n%s", code, errOut)
			}
		case <-time.After(wait):
			t.Errorf("tern exporter did not stop within %v of the interrupt", wait)
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("tern exporter log:\n%s", errOut)
		}
	})
	deadline := time.After(wait)
	for servingRE.FindStringSubmatch(out.String()) == nil {
		select {
		case code := <-done:
			t.Fatalf("tern exporter exited %d at start:\n%s%s", code, out, errOut)
		case <-out.changed:
		case <-deadline:
			t.Fatalf("tern exporter does not serve after %v:\n%s%s", wait, out, errOut)
		}
	}
	return &runningExporter{url: servingRE.FindStringSubmatch(out.String())[1], out: out, stop: stop}
}

// events runs tern events --json against e and returns the reports.
func (e *runningExporter) events(t *testing.T, args ...string) []fleet.EventReport {
	t.Helper()
	code, out, errOut := tern(t, append([]string{"events", "--exporter", e.url, "--json"}, args...)...)
	if code != cli.ExitOK {
		t.Fatalf("tern events: exit %d: %s", code, errOut)
	}
	var got []fleet.EventReport
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var r fleet.EventReport
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("tern events --json: %v in %q", err, out)
		}
		got = append(got, r)
	}
	return got
}

// waitEvents polls tern events until it returns n events.
func (e *runningExporter) waitEvents(t *testing.T, n int, args ...string) []fleet.EventReport {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		got := e.events(t, args...)
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func seqsOf(rs []fleet.EventReport) []uint64 {
	var out []uint64
	for _, r := range rs {
		out = append(out, r.Seq)
	}
	return out
}

func publishEvents(t *testing.T, d *device, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		kind := api.EventTaskDone
		if i%4 == 0 {
			kind = api.EventConverged
		}
		if err := d.PublishEvent(t.Context(), api.Event{ID: fmt.Sprint("ev-", i), Time: time.Now(), Kind: kind, TargetVersion: uint64(i)}); err != nil {
			t.Fatal(err)
		}
	}
}

func waitSent(t *testing.T, d *device) {
	t.Helper()
	for deadline := time.Now().Add(wait); ; time.Sleep(10 * time.Millisecond) {
		if _, pending := d.Outbox(); pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the device's outbox is not empty after %v", wait)
		}
	}
}

// The acceptance test of the event history: the events a device publishes
// while tern exporter is stopped are in tern events once it runs again,
// with those from before, each once, in order; a copy sent again is
// dropped.
func TestExporterDowntime(t *testing.T) {
	t.Parallel()
	for name, start := range map[string]func(testing.TB) string{"embedded": fleettest.Embedded, "mosquitto": fleettest.Mosquitto} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url := start(t)
			data := t.TempDir()
			const n, m = 6, 15
			exp := startExporter(t, url, data)
			d := startDevice(t, url, "pi-001")
			publishEvents(t, d, 1, n)
			if got := exp.waitEvents(t, n, "--since", "1h"); !slices.Equal(seqsOf(got), seqs(1, n)) {
				t.Fatalf("before the stop: seqs %v, want 1..%d", seqsOf(got), n)
			}
			exp.stop()

			publishEvents(t, d, n+1, m) // the exporter is stopped: the broker queues them
			waitSent(t, d)
			exp = startExporter(t, url, data)
			got := exp.waitEvents(t, m, "--since", "1h")
			if !slices.Equal(seqsOf(got), seqs(1, m)) {
				t.Fatalf("after the restart: seqs %v, want 1..%d exactly once", seqsOf(got), m)
			}
			for i, r := range got {
				if r.Device != "pi-001" || r.ID != fmt.Sprint("ev-", i+1) {
					t.Errorf("event %d: %+v", i, r)
				}
			}

			// A copy of a stored event, as a broker redelivers it.
			copyOf, _ := json.Marshal(got[2])
			publishRaw(t, url, "tern/cli/devices/pi-001/events", copyOf)
			publishEvents(t, d, m+1, m+1) // behind the copy: once it is in, the copy was handled
			got = exp.waitEvents(t, m+1, "--since", "1h")
			if !slices.Equal(seqsOf(got), seqs(1, m+1)) {
				t.Fatalf("after a copy: seqs %v, want 1..%d exactly once", seqsOf(got), m+1)
			}
			metrics := scrape(t, exp.url)
			for _, want := range []string{
				"tern_exporter_duplicates_dropped_total 1\n",
				fmt.Sprintf("tern_exporter_events_stored %d\n", m+1),
				`tern_events_total{kind="converged"} 4` + "\n",
				`tern_events_total{kind="task.done"} 12` + "\n",
			} {
				if !strings.Contains(metrics, want) {
					t.Errorf("/metrics lacks %q:\n%s", want, metrics)
				}
			}
			// Filters reach the exporter.
			if got := exp.events(t, "--since", "1h", "--kind", "converged", "--device", "pi-001"); !slices.Equal(seqsOf(got), []uint64{4, 8, 12, 16}) {
				t.Errorf("--kind converged: seqs %v", seqsOf(got))
			}
			if got := exp.events(t, "--since", "1h", "--device", "pi-002"); len(got) != 0 {
				t.Errorf("--device pi-002: %v", seqsOf(got))
			}
		})
	}
}

func seqs(from, to int) []uint64 {
	var out []uint64
	for i := from; i <= to; i++ {
		out = append(out, uint64(i))
	}
	return out
}

func publishRaw(t *testing.T, url, topic string, payload []byte) {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("test-raw").SetCleanSession(true))
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("raw client: %v", tok.Error())
	}
	defer c.Disconnect(100)
	if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("raw publish: %v", tok.Error())
	}
}

func scrape(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s: %s", resp.Status, b)
	}
	return string(b)
}

// tern events says what is wrong with its flags, and what to do when the
// exporter is not there.
func TestEventsErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--since", "yesterday"}, cli.ExitUsage, "neither a duration"},
		{[]string{"--since", "-3h"}, cli.ExitUsage, "positive"},
		{[]string{"--until", "2026-13-01"}, cli.ExitUsage, "RFC 3339"},
		{[]string{"--limit", "0"}, cli.ExitUsage, "--limit 0"},
		{[]string{"--exporter", "127.0.0.1:9700"}, cli.ExitUsage, "want http://host:port"},
		{[]string{"--exporter", "http://" + fleettest.FreeAddr(t)}, cli.ExitFail, "is tern exporter running? start it with `tern exporter"},
	} {
		code, _, errOut := tern(t, append([]string{"events"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("tern events %q: exit %d, %q; want exit %d and %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
	code, _, errOut := tern(t, "exporter", "--fleet", "cli")
	if code != cli.ExitUsage || !strings.Contains(errOut, "--data DIR is required") {
		t.Errorf("tern exporter without --data: %d %q", code, errOut)
	}
}
