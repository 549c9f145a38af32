package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/dashboard"
	"github.com/tern-iot/tern/internal/exporter"
)

// defaultExporter is where tern events finds tern exporter.
const defaultExporter = "http://127.0.0.1:9700"

func exporterCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("exporter", stderr)
	var ff fleetFlags
	ff.register(fs)
	listen := fs.String("listen", "127.0.0.1:9700", "HTTP `address` for /metrics, /api/events and the dashboard (port 0 picks a free one)")
	data := fs.String("data", "", "`DIR` to keep the event history in (events.db); required")
	retain := fs.Duration("retain", exporter.DefaultRetain, "keep each event this long after it arrived")
	maxEvents := fs.Int("max-events", exporter.DefaultMaxEvents, "keep at most this many events; the oldest go first")
	maxDevices := fs.Int("max-devices", exporter.DefaultMaxDevices, "keep the reports of at most this many devices")
	session := fs.String("session", "", "the persistent session's client `ID` (default tern-exporter-FLEET); the broker queues events for it while the exporter is stopped")
	verbose := fs.Bool("v", false, "log at debug level")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("exporter takes no arguments, got %q", fs.Arg(0))}
	}
	if *data == "" {
		return usageError{errors.New("exporter: --data DIR is required: the event history lives there, across restarts (e.g. --data /var/lib/tern-exporter)")}
	}
	if *retain <= 0 {
		return usageError{fmt.Errorf("--retain %v: must be positive, e.g. --retain 720h", *retain)}
	}
	if *maxEvents < 1 {
		return usageError{fmt.Errorf("--max-events %d: must be 1 or more", *maxEvents)}
	}
	if *maxDevices < 1 {
		return usageError{fmt.Errorf("--max-devices %d: must be 1 or more", *maxDevices)}
	}
	if *session != "" {
		if err := fleet.ValidID(*session); err != nil {
			return usageError{fmt.Errorf("--session: %w", err)}
		}
	}
	if err := ff.check(); err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return usageError{fmt.Errorf("exporter: --listen %s: %w", *listen, err)}
	}
	defer ln.Close()
	exp, err := exporter.Start(ctx, exporter.Options{
		Operator: fleet.OperatorOptions{Broker: ff.broker, TLS: ff.tls, Topics: fleet.Topics{Prefix: ff.prefix, Fleet: ff.fleet}, Session: *session},
		DataDir:  *data, Retain: *retain, MaxEvents: *maxEvents, MaxDevices: *maxDevices, Logger: log,
	})
	if err != nil {
		return err
	}
	defer exp.Close()
	// The dashboard's live streams end with base, at shutdown: Shutdown
	// does not end a response that is still being written.
	base, endStreams := context.WithCancel(context.Background())
	defer endStreams()
	ui := dashboard.Handler(exp, dashboard.Options{Fleet: ff.fleet})
	srv := &http.Server{Handler: exp.Handler(ui), ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return base }}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "tern exporter: serving http://%s (/metrics, /api/events, the dashboard at /); event history in %s\n", ln.Addr(), *data)
	var runErr error
	select {
	case <-ctx.Done():
		log.Info("exporter: stopping")
	case <-exp.Failed():
		runErr = exp.Err()
	case err := <-served:
		runErr = fmt.Errorf("exporter: HTTP server: %w", err)
	}
	endStreams()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	if err := exp.Close(); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

func eventsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("events", stderr)
	addr := fs.String("exporter", envOr("TERN_EXPORTER", defaultExporter), "tern exporter's `URL` (or $TERN_EXPORTER)")
	since := fs.String("since", "24h", "events from this `TIME` on: a duration back from now (24h, 90m) or an RFC 3339 time")
	until := fs.String("until", "", "events up to this `TIME` (same forms as --since)")
	device := fs.String("device", "", "only this device's events")
	var kinds kindList
	fs.Var(&kinds, "kind", "only events of this `KIND` (converged, task.failed, ...); repeat or separate with commas")
	limit := fs.Int("limit", exporter.DefaultLimit, fmt.Sprintf("at most this many, the newest (up to %d)", exporter.MaxLimit))
	asJSON := fs.Bool("json", false, "print one JSON event report per line")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("events takes no arguments, got %q; name a device with --device ID", fs.Arg(0))}
	}
	now := time.Now()
	from, err := exporter.ParseTime(*since, now)
	if err != nil {
		return usageError{fmt.Errorf("--since %w", err)}
	}
	to, err := exporter.ParseTime(*until, now)
	if err != nil {
		return usageError{fmt.Errorf("--until %w", err)}
	}
	if *limit < 1 || *limit > exporter.MaxLimit {
		return usageError{fmt.Errorf("--limit %d: want 1 to %d", *limit, exporter.MaxLimit)}
	}
	if *device != "" {
		if err := fleet.ValidID(*device); err != nil {
			return usageError{fmt.Errorf("--device: %w", err)}
		}
	}
	base, err := url.Parse(*addr)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return usageError{fmt.Errorf("--exporter %q: want http://host:port, e.g. %s", *addr, defaultExporter)}
	}
	q := url.Values{"limit": {fmt.Sprint(*limit)}}
	if !from.IsZero() {
		q.Set("since", from.UTC().Format(time.RFC3339Nano))
	}
	if !to.IsZero() {
		q.Set("until", to.UTC().Format(time.RFC3339Nano))
	}
	if *device != "" {
		q.Set("device", *device)
	}
	for _, k := range kinds {
		q.Add("kind", k)
	}
	u := base.JoinPath("api", "events")
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach tern exporter at %s: %w; is tern exporter running? start it with `tern exporter --broker tcp://HOST:1883 --fleet NAME --data DIR`, or point --exporter (or $TERN_EXPORTER) at it", base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 512<<20))
	if err != nil {
		return fmt.Errorf("read the answer of tern exporter at %s: %w", base, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("tern exporter at %s answered %s: %s", base, resp.Status, strings.TrimSpace(string(body)))
	}
	var got exporter.EventsResponse
	if err := json.Unmarshal(body, &got); err != nil {
		return fmt.Errorf("tern exporter at %s: the answer is not its event list (%v); is --exporter the address of tern exporter?", base, err)
	}
	enc := json.NewEncoder(stdout)
	for _, e := range got.Events {
		if *asJSON {
			if err := enc.Encode(e); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintln(stdout, eventLine(e))
	}
	if got.More {
		fmt.Fprintf(stderr, "tern events: showing the newest %d; older ones match too (--limit, --since)\n", got.Limit)
	}
	return nil
}

// eventLine is one event as tern events prints it.
func eventLine(e fleet.EventReport) string {
	parts := []string{e.Time.UTC().Format(time.RFC3339), e.Device, fmt.Sprintf("#%d", e.Seq), string(e.Kind)}
	if e.TargetVersion != 0 {
		parts = append(parts, fmt.Sprintf("v%d", e.TargetVersion))
	}
	if e.Module != "" {
		m := e.Module
		if e.Job != "" {
			m += "." + e.Job
		}
		parts = append(parts, m)
	}
	if e.JobID != "" {
		parts = append(parts, "job "+e.JobID)
	}
	if e.Path != "" {
		parts = append(parts, e.Path)
	}
	if e.Message != "" {
		msg, _, _ := strings.Cut(e.Message, "\n")
		parts = append(parts, msg)
	}
	return strings.Join(parts, "  ")
}

// kindList is tern events --kind: it may be repeated, each value split at
// commas.
type kindList []string

var _ flag.Value = (*kindList)(nil)

func (s *kindList) String() string { return strings.Join(*s, ",") }
func (s *kindList) Set(v string) error {
	for _, k := range strings.Split(v, ",") {
		if k = strings.TrimSpace(k); k != "" {
			*s = append(*s, k)
		}
	}
	return nil
}
