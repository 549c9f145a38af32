package promtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/internal/testbound"
)

// Binary is where Prometheus is looked for first (Debian's package puts
// it there); then $PATH.
const Binary = "/usr/bin/prometheus"

// Prometheus is a running Prometheus server.
type Prometheus struct {
	// URL is its HTTP address, http://127.0.0.1:port.
	URL string
	log *fleettest.LogBuffer
}

// Sample is one series of a query's answer.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Start starts Prometheus scraping every target, each a URL such as
// http://127.0.0.1:9700/metrics (its path is the metrics path), every
// second, as job "target<i>" (i from 0, in the order given). It is
// stopped when the test ends; its log is printed if the test failed.
func Start(t testing.TB, targets ...string) *Prometheus {
	t.Helper()
	bin := Binary
	if _, err := os.Stat(bin); err != nil {
		p, err := exec.LookPath("prometheus")
		if err != nil {
			t.Fatalf("promtest: prometheus not found at %s or on $PATH: install prometheus: apt-get install -y prometheus", Binary)
		}
		bin = p
	}
	dir := t.TempDir()
	var cfg bytes.Buffer
	cfg.WriteString("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n")
	for i, target := range targets {
		u, err := url.Parse(target)
		if err != nil || u.Host == "" {
			t.Fatalf("promtest: target %q: want a URL such as http://127.0.0.1:9700/metrics", target)
		}
		path := u.Path
		if path == "" {
			path = "/metrics"
		}
		fmt.Fprintf(&cfg, "  - job_name: target%d\n    scheme: %s\n    metrics_path: %s\n    static_configs:\n      - targets: [%q]\n", i, u.Scheme, strconv.Quote(path), u.Host)
	}
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, cfg.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for range 3 { // the free port may be taken before prometheus binds it
		p, err := launch(t, bin, conf, dir)
		if err == nil {
			return p
		}
		lastErr = err
	}
	t.Fatal(lastErr)
	return nil
}

func launch(t testing.TB, bin, conf, dir string) (*Prometheus, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	log := new(fleettest.LogBuffer)
	cmd := exec.Command(bin, "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=info")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("promtest: start %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		})
	}
	p := &Prometheus{URL: "http://" + addr, log: log}
	deadline := time.Now().Add(testbound.Hang)
	for {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("promtest: prometheus exited at start (%v); its log:\n%s", err, log)
		default:
		}
		resp, err := http.Get(p.URL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("promtest: prometheus on %s not ready after %v; its log:\n%s", addr, testbound.Hang, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", log)
		}
	})
	return p, nil
}

// Query evaluates expr now through /api/v1/query and returns the
// series of its vector (or scalar) answer.
func (p *Prometheus) Query(ctx context.Context, expr string) ([]Sample, error) {
	u := p.URL + "/api/v1/query?" + url.Values{"query": {expr}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("promtest: query %s: %w", expr, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	var ans struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return nil, fmt.Errorf("promtest: query %s: %s: %w", expr, body, err)
	}
	if ans.Status != "success" {
		return nil, fmt.Errorf("promtest: query %s: %s", expr, ans.Error)
	}
	parse := func(v []any) (float64, error) {
		if len(v) != 2 {
			return 0, fmt.Errorf("promtest: value %v", v)
		}
		s, _ := v[1].(string)
		return strconv.ParseFloat(s, 64)
	}
	switch ans.Data.ResultType {
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  []any             `json:"value"`
		}
		if err := json.Unmarshal(ans.Data.Result, &vec); err != nil {
			return nil, err
		}
		out := make([]Sample, 0, len(vec))
		for _, s := range vec {
			f, err := parse(s.Value)
			if err != nil {
				return nil, err
			}
			out = append(out, Sample{Labels: s.Metric, Value: f})
		}
		return out, nil
	case "scalar":
		var v []any
		if err := json.Unmarshal(ans.Data.Result, &v); err != nil {
			return nil, err
		}
		f, err := parse(v)
		return []Sample{{Value: f}}, err
	}
	return nil, fmt.Errorf("promtest: query %s: a %s answer; want a vector or a scalar", expr, ans.Data.ResultType)
}

// WaitFor polls expr until it answers one series of value want, and
// fails the test if it does not within testbound.Hang (scrapes come every
// second; a busy machine makes them late, never the test flaky).
func (p *Prometheus) WaitFor(t testing.TB, expr string, want float64) Sample {
	t.Helper()
	deadline := time.Now().Add(testbound.Hang)
	var last []Sample
	var lastErr error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		last, lastErr = p.Query(ctx, expr)
		cancel()
		if lastErr == nil && len(last) == 1 && last[0].Value == want {
			return last[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("promtest: %s: want one series of value %v within %v; last answer %v (err %v)", expr, want, testbound.Hang, last, lastErr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
