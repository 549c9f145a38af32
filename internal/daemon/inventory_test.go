package daemon

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/runtime/api"
)

// The inventory reads the board's model, the kernel, the boot time and
// the process's memory from /proc (here a fake root), free disk from the
// data directory's file system, and the outbox's depth every time.
func TestInventory(t *testing.T) {
	root := t.TempDir() + "/"
	for name, body := range map[string]string{
		"proc/device-tree/model":    "Raspberry Pi Zero W Rev 1.1\x00",
		"proc/sys/kernel/osrelease": "6.6.31+rpt-rpi-v6\n",
		"proc/stat":                 "cpu  1 2 3\nbtime 1700000000\nprocesses 9\n",
		"proc/self/statm":           "5000 1200 300 1 0 900 0\n",
	} {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	depth := 7
	inv := newInventory(root, t.TempDir(), "sim", "bolt", func() int { return depth })
	got := inv.Info()
	if got.Board != "Raspberry Pi Zero W Rev 1.1" || got.Kernel != "6.6.31+rpt-rpi-v6" || !got.Boot.Equal(time.Unix(1700000000, 0)) ||
		got.RSS != 1200*uint64(os.Getpagesize()) || got.DiskFree == 0 || got.OutboxDepth != 7 || got.Store != "bolt" || got.Started.IsZero() {
		t.Fatalf("inventory %+v", got)
	}
	depth = 9
	if got := inv.Info(); got.OutboxDepth != 9 {
		t.Fatalf("outbox depth %d after it changed, want 9", got.OutboxDepth)
	}
	// Without a device tree: the simulated board's name.
	if got := newInventory(t.TempDir()+"/", t.TempDir(), "sim", "badger", nil).Info(); got.Board != "sim" || got.Kernel != "" || !got.Boot.IsZero() {
		t.Fatalf("inventory without /proc: %+v", got)
	}
}

// The summary and the text format come from one snapshot and agree.
func TestSnapshotForms(t *testing.T) {
	s := snapshot{Info: api.AgentInfo{Version: "v1", Arch: "armv6", Board: `Pi "Zero"`, Started: time.Unix(100, 0), RSS: 5, DiskFree: 6, OutboxDepth: 2}, Reconnects: 3}
	s.Plans = map[string]uint64{"found": 2, "partial": 1}
	s.Refusals = map[string]uint64{"module": 4, "job": 1}
	s.Rollbacks = map[string]uint64{"relay": 1}
	s.Converged, s.TargetVersion = true, 12
	sum := s.summary()
	if sum.Plans["found"] != 2 || sum.Refusals != 5 || sum.Rollbacks != 1 || sum.Reconnects != 3 {
		t.Fatalf("summary %+v", sum)
	}
	b, err := s.promText()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		`ternd_info{version="v1",arch="armv6",board="Pi \"Zero\""} 1`,
		`ternd_plans_total{outcome="failed"} 0`,
		`ternd_refusals_total{kind="module"} 4`,
		`ternd_rollbacks_total{module="relay"} 1`,
		"ternd_reconnects_total 3", "ternd_outbox_depth 2", "ternd_converged 1", "ternd_target_version 12",
		"ternd_start_time_seconds 100", "# TYPE ternd_last_converged_timestamp_seconds gauge",
	} {
		if !containsLine(string(b), line) {
			t.Errorf("no line %q in:\n%s", line, b)
		}
	}
}

func containsLine(text, line string) bool {
	for _, l := range strings.Split(text, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

type countingAgent struct{}

func (countingAgent) Metrics() runtime.Metrics {
	return runtime.Metrics{Plans: map[string]uint64{"found": 4}, Converged: true, TargetVersion: 9}
}

// The /metrics responder answers GET /metrics (net/http's client reads
// it), refuses other paths, methods and oversized heads with their
// status, and stops with its context.
func TestMetricsResponder(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &observer{agent: countingAgent{}, inv: newInventory(t.TempDir()+"/", t.TempDir(), "sim", "bolt", nil)}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { o.serveMetrics(ctx, l, slog.New(slog.DiscardHandler)); close(done) }()
	base := "http://" + l.Addr().String()
	get := func(method, path string) (int, string) {
		req, _ := http.NewRequest(method, base+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("GET", "/metrics?x=1"); code != 200 || !strings.Contains(body, `ternd_plans_total{outcome="found"} 4`) || !strings.Contains(body, "ternd_target_version 9") {
		t.Errorf("GET /metrics: %d\n%s", code, body)
	}
	if code, _ := get("GET", "/"); code != 404 {
		t.Errorf("GET /: %d, want 404", code)
	}
	if code, _ := get("POST", "/metrics"); code != 405 {
		t.Errorf("POST /metrics: %d, want 405", code)
	}
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	// Exactly the bound, and no end of head: nothing left unread that
	// would make the kernel reset the connection under the answer.
	prefix := "GET /metrics HTTP/1.1\r\nX: "
	io.WriteString(c, prefix+strings.Repeat("a", maxRequestHead-len(prefix)))
	b, _ := io.ReadAll(c)
	c.Close()
	if !strings.HasPrefix(string(b), "HTTP/1.1 431 ") {
		t.Errorf("an oversized head: %q", b[:min(len(b), 60)])
	}
	cancel()
	<-done
}
