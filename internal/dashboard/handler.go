package dashboard

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// Options configure the dashboard. The zero value is usable: each zero
// field takes the default documented on it.
type Options struct {
	// Title is the page's title and heading; default "tern fleet".
	Title string
	// Fleet names the fleet under the heading; default none.
	Fleet string
	// MaxClients bounds the live streams open at once (api/stream); one
	// more is answered 503 with Retry-After. Default 64.
	MaxClients int
	// Interval is the shortest time between two updates sent to one
	// live client: changes within it are sent together. Default 250ms
	// (at most four updates a second per client).
	Interval time.Duration
	// MaxDevices bounds the devices api/devices returns (the first by
	// id; "more" counts the rest). Default 10000.
	MaxDevices int
	// Now is the clock ages are measured with; default time.Now.
	Now func() time.Time
}

// Defaults and bounds.
const (
	DefaultTitle      = "tern fleet"
	DefaultMaxClients = 64
	DefaultInterval   = 250 * time.Millisecond
	DefaultMaxDevices = 10000

	// DefaultEvents and MaxEvents bound a device page's events
	// (api/devices/{id}?events=N).
	DefaultEvents = 50
	MaxEvents     = 500
	// MaxKinds bounds the kinds one event query names (kind=…), and
	// maxKindLen the bytes of each.
	MaxKinds   = 16
	maxKindLen = 64
	// maxSince bounds since=… in an event query.
	maxSince = 366 * 24 * time.Hour
	// maxPending bounds the device ids one live client gathers between
	// two updates; past it the client is told to reload everything.
	maxPending = 256
	// writeTimeout bounds one write to a live client: a client that
	// does not read for that long is dropped.
	writeTimeout = 10 * time.Second
	// keepalive is how often an idle stream sends a comment, so that
	// proxies keep it open and a dead client is noticed.
	keepalive = 20 * time.Second
)

func (o Options) withDefaults() Options {
	if o.Title == "" {
		o.Title = DefaultTitle
	}
	if o.MaxClients <= 0 {
		o.MaxClients = DefaultMaxClients
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.MaxDevices <= 0 {
		o.MaxDevices = DefaultMaxDevices
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

//go:embed assets
var assets embed.FS

// csp lets the page load its own script, style and data and nothing else:
// no inline script or style, no other origin, no frames, no forms.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

type handler struct {
	src     Source
	opts    Options
	mux     *http.ServeMux
	clients atomic.Int64
	static  map[string]asset
}

type asset struct {
	body  []byte
	ctype string
	etag  string
}

// Handler serves the dashboard for src: its page and assets, its JSON API
// and its live stream. Every path is relative, so it can be mounted under
// a prefix with http.StripPrefix:
//
//	mux.Handle("/dash/", http.StripPrefix("/dash", dashboard.Handler(src, opts)))
//
// It has no login: serve it on loopback, or behind a reverse proxy that
// authenticates (docs/observability.md). A live stream ends when its
// request's context does; give the http.Server a BaseContext that is
// canceled at shutdown to end them all.
func Handler(src Source, opts Options) http.Handler {
	h := &handler{src: src, opts: opts.withDefaults(), mux: http.NewServeMux(), static: map[string]asset{}}
	for name, ctype := range map[string]string{
		"index.html": "text/html; charset=utf-8",
		"app.js":     "text/javascript; charset=utf-8",
		"app.css":    "text/css; charset=utf-8",
	} {
		b, err := fs.ReadFile(assets, "assets/"+name)
		if err != nil {
			panic("dashboard: embedded asset missing: " + name) // a build error, not an input
		}
		if name == "index.html" {
			b = h.page(b)
		}
		sum := sha256.Sum256(b)
		h.static[name] = asset{body: b, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	}
	h.mux.HandleFunc("GET /{$}", h.serveAsset("index.html"))
	h.mux.HandleFunc("GET /app.js", h.serveAsset("app.js"))
	h.mux.HandleFunc("GET /app.css", h.serveAsset("app.css"))
	h.mux.HandleFunc("GET /api/devices", h.devices)
	h.mux.HandleFunc("GET /api/devices/{id}", h.device)
	h.mux.HandleFunc("GET /api/rollouts", h.rollouts)
	h.mux.HandleFunc("GET /api/jobs", h.jobs)
	h.mux.HandleFunc("GET /api/stream", h.stream)
	return h
}

// page puts the title and fleet name into the HTML, escaped: they come
// from the operator's configuration, never from devices.
func (h *handler) page(b []byte) []byte {
	s := strings.NewReplacer("{{title}}", htmlEscape(h.opts.Title), "{{fleet}}", htmlEscape(h.opts.Fleet)).Replace(string(b))
	return []byte(s)
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", csp)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	if r.URL.Path == "" {
		// Mounted under a prefix and asked for without the trailing
		// slash: the page's relative links need it.
		p, _, _ := strings.Cut(r.RequestURI, "?")
		if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") {
			p = ""
		}
		http.Redirect(w, r, strings.TrimSuffix(p, "/")+"/", http.StatusMovedPermanently)
		return
	}
	h.mux.ServeHTTP(w, r)
}

func (h *handler) serveAsset(name string) http.HandlerFunc {
	a := h.static[name]
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", a.ctype)
		w.Header().Set("ETag", a.etag)
		w.Header().Set("Cache-Control", "no-cache")
		if r.Header.Get("If-None-Match") == a.etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Write(a.body)
	}
}

// writeJSON writes v. encoding/json escapes <, > and & in strings, so
// nothing a device sent can close a script or an HTML context even if the
// JSON were misread as HTML.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// apiError is every API error's body.
type apiError struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, apiError{Error: msg})
}
