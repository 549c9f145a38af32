package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tern-iot/tern/internal/promtext"
	"github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/runtime/api"
)

// ternd's metrics (docs/observability.md, "Device metrics") come from one
// snapshot (observer.snapshot): the agent's counters, the fleet
// connection's and the inventory. The state report's summary, the
// node_exporter textfile and /metrics are three renderings of it, so
// they never disagree. ternd links no Prometheus client library
// (RATIONALE.md, "Metrics without a client library").

// metricsSource is what the observer reads the agent's counters from.
type metricsSource interface{ Metrics() runtime.Metrics }

// observer gathers ternd's metrics.
type observer struct {
	agent      metricsSource
	reconnects func() uint64 // nil: no fleet connection
	inv        *inventory
}

// snapshot is ternd's metrics at one moment.
type snapshot struct {
	runtime.Metrics
	Reconnects uint64
	Info       api.AgentInfo
}

func (o *observer) snapshot() snapshot {
	s := snapshot{Metrics: o.agent.Metrics(), Info: o.inv.Info()}
	if o.reconnects != nil {
		s.Reconnects = o.reconnects()
	}
	return s
}

// report fills a status's inventory and metrics summary (runtime.Options.Report).
func (o *observer) report(st *runtime.Status) {
	s := o.snapshot()
	st.Agent, st.Metrics = &s.Info, s.summary()
}

// summary is the state report's form of s: bounded maps (the agent's
// counters are, at api.MaxMetricsKeys keys each), sums where Prometheus
// has labels.
func (s snapshot) summary() *api.MetricsSummary {
	m := &api.MetricsSummary{Reconnects: s.Reconnects, LastConverged: s.LastConverged}
	if len(s.Plans) > 0 {
		m.Plans = s.Plans
	}
	if len(s.Tasks) > 0 {
		m.Tasks = make(map[string]uint64, len(s.Tasks))
		for k, n := range s.Tasks {
			m.Tasks[k.Module+"."+k.Job+" "+k.Outcome] = n
		}
	}
	if len(s.Calls) > 0 {
		m.Calls = make(map[string]api.CallStats, len(s.Calls))
		for k, h := range s.Calls {
			m.Calls[k] = api.CallStats{Count: h.Count, Sum: h.Sum, Max: h.Max}
		}
	}
	for _, n := range s.Rollbacks {
		m.Rollbacks += n
	}
	for _, n := range s.Refusals {
		m.Refusals += n
	}
	return m
}

// Outcomes and kinds always written, at 0 before the first, so that a
// rate() over them starts at the device's start.
var (
	planOutcomes = []string{"found", "partial", "failed"}
	refusalKinds = []string{"target", "module", "job"}
)

// promText is s in Prometheus's text format, the agreed ternd_ names.
func (s snapshot) promText() ([]byte, error) {
	var w promtext.Writer
	w.Family("ternd_info", "The running ternd: its version, architecture and board.", promtext.Gauge)
	w.Sample(promtext.L("version", s.Info.Version, "arch", s.Info.Arch, "board", s.Info.Board), 1)

	w.Family("ternd_plans_total", "Plans by outcome: found (a plan runs), partial (it leaves part of the target out; found counts it too), failed (no plan).", promtext.Counter)
	for _, o := range planOutcomes {
		w.Sample(promtext.L("outcome", o), float64(s.Plans[o]))
	}
	w.Family("ternd_tasks_total", "Tasks of plans by module, job and outcome (done, failed).", promtext.Counter)
	for _, k := range s.SortedTasks() {
		w.Sample(promtext.L("module", k.Module, "job", k.Job, "outcome", k.Outcome), float64(s.Tasks[k]))
	}
	w.Family("ternd_module_call_seconds", "Time calls into a module took (planning, running, sensing).", promtext.Histogram)
	for _, mod := range sortedKeys(s.Calls) {
		w.Histogram(promtext.L("module", mod), s.Calls[mod])
	}
	w.Family("ternd_rollbacks_total", "Modules rolled back to their previous version after failing calls in a row.", promtext.Counter)
	for _, mod := range sortedKeys(s.Rollbacks) {
		w.Sample(promtext.L("module", mod), float64(s.Rollbacks[mod]))
	}
	w.Family("ternd_refusals_total", "Targets, module releases and jobs refused (signature, version, size, ...).", promtext.Counter)
	for _, k := range refusalKinds {
		w.Sample(promtext.L("kind", k), float64(s.Refusals[k]))
	}
	w.Family("ternd_reconnects_total", "Connections to the broker set up after the first.", promtext.Counter)
	w.Sample(nil, float64(s.Reconnects))
	w.Family("ternd_outbox_depth", "Event reports waiting to be sent to the broker.", promtext.Gauge)
	w.Sample(nil, float64(s.Info.OutboxDepth))
	w.Family("ternd_converged", "1 when the device has reached its target.", promtext.Gauge)
	w.Sample(nil, b2f(s.Converged))
	w.Family("ternd_target_version", "The version of the target the device holds.", promtext.Gauge)
	w.Sample(nil, float64(s.TargetVersion))
	w.Family("ternd_last_converged_timestamp_seconds", "When the device last reached its target (absent until it has since it started).", promtext.Gauge)
	if !s.LastConverged.IsZero() {
		w.Sample(nil, unixSeconds(s.LastConverged))
	}
	w.Family("ternd_start_time_seconds", "When this ternd process started.", promtext.Gauge)
	w.Sample(nil, unixSeconds(s.Info.Started))
	w.Family("ternd_resident_memory_bytes", "ternd's resident memory.", promtext.Gauge)
	w.Sample(nil, float64(s.Info.RSS))
	w.Family("ternd_disk_free_bytes", "Free bytes on the data directory's file system.", promtext.Gauge)
	w.Sample(nil, float64(s.Info.DiskFree))
	return w.Bytes()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// writeTextfile writes the metrics to path every interval until ctx is
// done, atomically (node_exporter never reads half a file). A failure is
// said at Warn once until a write succeeds again.
func (o *observer) writeTextfile(ctx context.Context, path string, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		b, err := o.snapshot().promText()
		if err == nil {
			err = promtext.WriteFile(path, b)
		}
		switch {
		case err != nil && !failing:
			log.Warn("metrics textfile not written; retrying every interval (does its directory exist, and may ternd write there?)", "path", path, "dir", filepath.Dir(path), "interval", interval, "err", err)
		case err == nil && failing:
			log.Info("metrics textfile written again", "path", path)
		}
		failing = err != nil
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// listenMetrics opens the /metrics listener (Config.Metrics.Listen).
func listenMetrics(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ternd: metrics.listen: %w; choose another port, or remove metrics.listen", err)
	}
	return l, nil
}

// serveMetrics serves GET /metrics on l until ctx is done: HTTP/1.x, one
// request a connection. It is not net/http's server on purpose: that
// costs ternd 690 KB of binary (RATIONALE.md, "A /metrics responder, not
// net/http's server"), for a listener that answers one path on loopback.
// Every input is bounded: the request's head at maxRequestHead bytes,
// each connection at metricsConnTimeout, connections at once at
// maxMetricsConns (more wait in the kernel's backlog).
func (o *observer) serveMetrics(ctx context.Context, l net.Listener, log *slog.Logger) {
	log.Info("serving metrics", "addr", "http://"+l.Addr().String()+"/metrics")
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	slots := make(chan struct{}, maxMetricsConns)
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				log.Warn("metrics listener stopped", "err", err)
			}
			return
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			c.Close()
			return
		}
		conns.Go(func() {
			defer func() { <-slots }()
			o.answer(c)
		})
	}
}

// Bounds of the /metrics responder.
const (
	maxRequestHead     = 8 << 10
	metricsConnTimeout = 10 * time.Second
	maxMetricsConns    = 4
)

// answer reads one request on c and answers it.
func (o *observer) answer(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(metricsConnTimeout))
	head := make([]byte, 0, 1024)
	buf := make([]byte, 1024)
	for !bytes.Contains(head, []byte("\r\n\r\n")) && !bytes.Contains(head, []byte("\n\n")) {
		if len(head) >= maxRequestHead {
			reply(c, "431 Request Header Fields Too Large", "text/plain", []byte("request head over 8 KiB\n"))
			return
		}
		n, err := c.Read(buf[:min(len(buf), maxRequestHead-len(head))])
		head = append(head, buf[:n]...)
		if err != nil {
			return
		}
	}
	line, _, _ := bytes.Cut(head, []byte("\n"))
	method, rest, _ := strings.Cut(strings.TrimSpace(string(line)), " ")
	target, proto, _ := strings.Cut(rest, " ")
	path, _, _ := strings.Cut(target, "?")
	switch {
	case !strings.HasPrefix(proto, "HTTP/1."):
		reply(c, "400 Bad Request", "text/plain", []byte("not an HTTP/1.x request\n"))
	case path != "/metrics":
		reply(c, "404 Not Found", "text/plain", []byte("ternd serves /metrics only\n"))
	case method != "GET" && method != "HEAD":
		reply(c, "405 Method Not Allowed", "text/plain", []byte("GET /metrics\n"))
	default:
		b, err := o.snapshot().promText()
		if err != nil {
			reply(c, "500 Internal Server Error", "text/plain", []byte(err.Error()+"\n"))
			return
		}
		if method == "HEAD" {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", promtext.ContentType, len(b))
			return
		}
		reply(c, "200 OK", promtext.ContentType, b)
	}
}

func reply(c net.Conn, status, contentType string, body []byte) {
	fmt.Fprintf(c, "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", status, contentType, len(body))
	c.Write(body)
}
