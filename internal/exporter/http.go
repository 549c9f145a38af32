package exporter

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/dashboard"
	"github.com/tern-iot/tern/internal/promtext"
)

var errClosed = errors.New("exporter: closed")

// EventsResponse is the answer of GET /api/events: the newest events
// that match, at most limit, in stored order (each device's in seq
// order); More says that older ones matched too.
type EventsResponse struct {
	Events []fleet.EventReport `json:"events"`
	Limit  int                 `json:"limit"`
	More   bool                `json:"more"`
}

// Handler serves the exporter over HTTP:
//
//	GET /metrics      Prometheus's text format (the tern_ families)
//	GET /api/events   the event history as JSON (EventsResponse); query
//	                  parameters device, since, until, kind (repeated or
//	                  comma-separated), limit; since and until are RFC 3339
//	                  times or durations back from now ("24h")
//	GET /healthz      "ok", or 503 once storing failed
//	/                 ui, the dashboard (dashboard.Handler(e)); nil: a page
//	                  that names the endpoints
func (e *Exporter) Handler(ui http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		b, err := e.metrics()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", promtext.ContentType)
		w.Write(b)
	})
	mux.HandleFunc("GET /api/events", e.serveEvents)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := e.Err(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	if ui == nil {
		ui = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/" {
				http.NotFound(w, r)
				return
			}
			fmt.Fprintln(w, "tern exporter: /metrics (Prometheus), /api/events (the event history), /healthz")
		})
	}
	mux.Handle("/", ui)
	return mux
}

// ParseQuery reads the parameters of GET /api/events, as of now.
func ParseQuery(v map[string][]string, now time.Time) (dashboard.EventQuery, error) {
	get := func(k string) string {
		if s := v[k]; len(s) > 0 {
			return s[len(s)-1]
		}
		return ""
	}
	var q dashboard.EventQuery
	var err error
	q.Device = get("device")
	if q.Since, err = ParseTime(get("since"), now); err != nil {
		return q, fmt.Errorf("since: %w", err)
	}
	if q.Until, err = ParseTime(get("until"), now); err != nil {
		return q, fmt.Errorf("until: %w", err)
	}
	for _, k := range v["kind"] {
		for _, kind := range strings.Split(k, ",") {
			if kind = strings.TrimSpace(kind); kind != "" {
				q.Kinds = append(q.Kinds, kind)
			}
		}
	}
	if len(q.Kinds) > 64 {
		return q, fmt.Errorf("kind: %d kinds; at most 64", len(q.Kinds))
	}
	if s := get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return q, fmt.Errorf("limit %q: want a number from 1 to %d", s, MaxLimit)
		}
		q.Limit = n
	}
	return q, nil
}

// ParseTime reads a time as tern events and /api/events take it: empty
// (none), an RFC 3339 time, or a duration back from now ("24h", "90m").
func ParseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("%q: a duration back from now is positive, e.g. 24h", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is neither a duration (24h, 90m, 30s) nor an RFC 3339 time (2026-12-06T04:00:00Z)", s)
}

func (e *Exporter) serveEvents(w http.ResponseWriter, r *http.Request) {
	q, err := ParseQuery(r.URL.Query(), e.now())
	if err != nil {
		http.Error(w, "bad query: "+err.Error(), http.StatusBadRequest)
		return
	}
	events, more, err := e.events(r.Context(), q)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if events == nil {
		events = []fleet.EventReport{}
	}
	limit := q.Limit
	if limit == 0 {
		limit = DefaultLimit
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(EventsResponse{Events: events, Limit: limit, More: more})
}
