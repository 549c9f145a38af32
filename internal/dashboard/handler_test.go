package dashboard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/dashboard"
	"github.com/tern-iot/tern/internal/dashboard/dashtest"
	"github.com/tern-iot/tern/internal/testbound"
	"github.com/tern-iot/tern/runtime/api"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fixture is the simulated fleet with its events, served at /.
func fixture(t *testing.T, opts dashboard.Options) (*dashtest.Source, http.Handler) {
	t.Helper()
	src := dashtest.NewSource(dashtest.Fleet(now)...)
	for _, d := range src.Devices() {
		src.AddEvents(dashtest.Events(d.ID, now)...)
	}
	if opts.Now == nil {
		opts.Now = func() time.Time { return now }
	}
	return src, dashboard.Handler(src, opts)
}

// get serves one request and returns the response.
func get(t *testing.T, h http.Handler, target string) *http.Response {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
	return w.Result()
}

func getJSON[T any](t *testing.T, h http.Handler, target string, code int) T {
	t.Helper()
	res := get(t, h, target)
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != code {
		t.Fatalf("GET %s: %d %s; want %d", target, res.StatusCode, body, code)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q", target, ct)
	}
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("GET %s: %v in %s", target, err, body)
	}
	return v
}

func TestDevices(t *testing.T) {
	_, h := fixture(t, dashboard.Options{Fleet: "greenhouses"})
	l := getJSON[dashboard.DeviceList](t, h, "/api/devices", 200)
	if l.Counts != dashtest.FleetCounts {
		t.Errorf("counts %+v, want %+v", l.Counts, dashtest.FleetCounts)
	}
	if len(l.Devices) != dashtest.FleetSize || l.More != 0 || l.Fleet != "greenhouses" || l.Title != dashboard.DefaultTitle {
		t.Fatalf("%d devices, more %d, fleet %q, title %q", len(l.Devices), l.More, l.Fleet, l.Title)
	}
	byID := map[string]dashboard.Row{}
	for _, r := range l.Devices {
		byID[r.ID] = r
	}
	for id, want := range map[string]string{"pi-001": "converged", "pi-009": "pending", "pi-011": "failed", "pi-012": "pending"} {
		if got := byID[id].Status; got != want {
			t.Errorf("%s: status %q, want %q", id, got, want)
		}
	}
	r := byID["pi-011"]
	if !strings.Contains(r.Error, "no device acknowledged") || r.Agent == nil || r.Agent.Arch != "armv7" ||
		r.Facts["site"] != "north-field" || r.Rollouts["relay-5"].Phase != api.RolloutFailed || r.TargetVersion != 8 || r.Phase != api.PhaseFailed {
		t.Errorf("pi-011: %+v", r)
	}
	if r := byID["pi-012"]; r.Online || r.Age != 3600 {
		t.Errorf("pi-012: online %v, age %v; want offline, 3600 s", r.Online, r.Age)
	}
	if r := byID["pi-004"]; strings.Join(r.Groups, ",") != "north,lab" || r.Modules["relay"] != "5" || r.Jobs != 1 {
		t.Errorf("pi-004: groups %v, modules %v, jobs %d", r.Groups, r.Modules, r.Jobs)
	}
	// A device with no report yet is counted as such.
	src := dashtest.NewSource(dashboard.Device{ID: "new-1"})
	l = getJSON[dashboard.DeviceList](t, dashboard.Handler(src, dashboard.Options{}), "/api/devices", 200)
	if l.Counts != (dashboard.Counts{Devices: 1, Unreported: 1}) || l.Devices[0].Status != "unreported" || l.Devices[0].Age != -1 {
		t.Errorf("unreported device: %+v", l)
	}
}

func TestMaxDevices(t *testing.T) {
	_, h := fixture(t, dashboard.Options{MaxDevices: 5})
	l := getJSON[dashboard.DeviceList](t, h, "/api/devices", 200)
	if len(l.Devices) != 5 || l.More != dashtest.FleetSize-5 || l.Counts != dashtest.FleetCounts || l.Devices[4].ID != "pi-005" {
		t.Errorf("MaxDevices 5: %d rows (last %s), more %d, counts %+v; want the first 5, 7 more, the counts of all",
			len(l.Devices), l.Devices[len(l.Devices)-1].ID, l.More, l.Counts)
	}
}

func TestDevice(t *testing.T) {
	src, h := fixture(t, dashboard.Options{})
	p := getJSON[dashboard.DevicePage](t, h, "/api/devices/pi-009", 200)
	if p.Device.ID != "pi-009" || p.Plan == nil || len(p.Plan.Tasks) != 5 || p.Plan.Tasks[2].State != "running" || p.Plan.TargetVersion != 8 {
		t.Fatalf("pi-009: %+v", p)
	}
	if len(p.Events) != 5 || p.Events[0].Kind != api.EventTargetAccepted || p.Events[4].Kind != api.EventConverged || p.EventsError != "" {
		t.Errorf("pi-009 events: %+v (%s)", p.Events, p.EventsError)
	}
	if len(p.Jobs) != 0 {
		t.Errorf("pi-009 jobs: %+v", p.Jobs)
	}
	p = getJSON[dashboard.DevicePage](t, h, "/api/devices/pi-004?events=2&kind=task.done,converged&kind=plan.found&since=24h", 200)
	if len(p.Jobs) != 1 || p.Jobs[0].ID != "rotate-logs" || p.Jobs[0].Phase != "succeeded" {
		t.Errorf("pi-004 jobs: %+v", p.Jobs)
	}
	if len(p.Events) != 2 || p.Events[0].Kind != api.EventTaskDone || p.Events[1].Kind != api.EventConverged {
		t.Errorf("pi-004 events=2 of three kinds: %+v; want the newest two, oldest first", p.Events)
	}
	// The Source failing is said on the page, not a failed request.
	src.EventsErr = errors.New("store closed")
	p = getJSON[dashboard.DevicePage](t, h, "/api/devices/pi-004", 200)
	if !strings.Contains(p.EventsError, "store closed") || p.Events == nil || len(p.Events) != 0 {
		t.Errorf("events error: %q, events %v", p.EventsError, p.Events)
	}
}

func TestDeviceBounds(t *testing.T) {
	_, h := fixture(t, dashboard.Options{})
	for _, c := range []struct {
		target string
		code   int
		says   string
	}{
		{"/api/devices/pi-404", 404, "no device"},
		{"/api/devices/" + strings.Repeat("a", 65), 400, "limit is 64"},
		{"/api/devices/pi%2B1", 400, "device id"},
		{"/api/devices/pi-001?events=0", 400, "from 1 to 500"},
		{"/api/devices/pi-001?events=501", 400, "from 1 to 500"},
		{"/api/devices/pi-001?events=lots", 400, "from 1 to 500"},
		{"/api/devices/pi-001?since=forever", 400, "duration"},
		{"/api/devices/pi-001?since=-1h", 400, "duration"},
		{"/api/devices/pi-001?since=9000h", 400, "at most"},
		{"/api/devices/pi-001?kind=Task.Done", 400, "lower-case"},
		{"/api/devices/pi-001?kind=" + strings.Repeat("a", 65), 400, "lower-case"},
		{"/api/devices/pi-001?kind=" + strings.Repeat("a,", 17), 400, "at most 16"},
	} {
		e := getJSON[struct{ Error string }](t, h, c.target, c.code)
		if !strings.Contains(e.Error, c.says) {
			t.Errorf("GET %s: %q; want it to say %q", c.target, e.Error, c.says)
		}
	}
	// The largest legal values pass.
	getJSON[dashboard.DevicePage](t, h, "/api/devices/pi-001?events=500&since=8784h&kind="+strings.Repeat("a,", 16), 200)
	getJSON[struct{ Error string }](t, h, "/api/devices/"+strings.Repeat("a", 64), 404)
}

func TestProgress(t *testing.T) {
	_, h := fixture(t, dashboard.Options{})
	rl := getJSON[dashboard.RolloutList](t, h, "/api/rollouts", 200)
	if len(rl.Rollouts) != 1 {
		t.Fatalf("rollouts: %+v", rl)
	}
	r := rl.Rollouts[0]
	want := map[api.RolloutPhase]int{"succeeded": 8, "applying": 2, "failed": 1, "waiting": 1}
	if r.ID != "relay-5" || r.What != "module relay version 5" || r.Devices != 12 || !equalMaps(r.Totals, want) || len(r.Waves) != 2 {
		t.Errorf("relay-5: %+v; want totals %v in 2 waves", r, want)
	}
	if sum := r.Waves[0][api.RolloutSucceeded] + r.Waves[1][api.RolloutSucceeded]; sum != 8 || r.Waves[1][api.RolloutApplying] != 2 {
		t.Errorf("relay-5 waves: %v", r.Waves)
	}
	jl := getJSON[dashboard.JobList](t, h, "/api/jobs", 200)
	if len(jl.Jobs) != 1 || jl.Jobs[0].ID != "rotate-logs" || jl.Jobs[0].Devices != 6 || !equalMaps(jl.Jobs[0].Phases, map[string]int{"succeeded": 4, "queued": 2}) ||
		jl.Jobs[0].Module != "logs" || jl.Jobs[0].Command != "rotate" {
		t.Errorf("jobs: %+v", jl)
	}
}

func equalMaps[K comparable](a, b map[K]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// What a device sends never reaches the page as markup: the JSON escapes
// it, and the page has no inline script for it to join.
func TestEscaping(t *testing.T) {
	const evil = `</script><img src=x onerror=alert(1)>&`
	st := api.Status{Phase: api.PhaseFailed, Error: evil, Facts: map[string]string{"k": evil}}
	src := dashtest.NewSource(dashboard.Device{ID: "evil-1", State: &fleet.StateReport{Device: "evil-1", Groups: []string{evil}, Status: st}})
	src.AddEvents(fleet.EventReport{Device: "evil-1", Event: api.Event{Kind: "task.failed", Message: evil}})
	h := dashboard.Handler(src, dashboard.Options{Title: `<b>"tern"</b>`, Fleet: "a&b"})
	for _, target := range []string{"/api/devices", "/api/devices/evil-1"} {
		res := get(t, h, target)
		body, _ := io.ReadAll(res.Body)
		if strings.ContainsAny(string(body), "<>&") {
			t.Errorf("GET %s: raw <, > or & in %s", target, body)
		}
		if !strings.Contains(string(body), `\u003c/script\u003e`) {
			t.Errorf("GET %s: the error is not there, escaped: %s", target, body)
		}
	}
	res := get(t, h, "/")
	page, _ := io.ReadAll(res.Body)
	if !strings.Contains(string(page), "<title>&lt;b&gt;&#34;tern&#34;&lt;/b&gt;</title>") || !strings.Contains(string(page), "a&amp;b") {
		t.Errorf("the title and fleet name are not escaped in the page:\n%s", page)
	}
	// No inline script, style or handler for the CSP to have to allow.
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]`), // a script with a body
		regexp.MustCompile(`<script(?:(?:\s+[a-z-]+(?:="[^"]*")?)*)>`),
		regexp.MustCompile(`\son[a-z]+=`),
		regexp.MustCompile(`\sstyle=`),
		regexp.MustCompile(`<style`),
	} {
		for _, m := range bad.FindAllString(string(page), -1) {
			if !strings.Contains(m, `src="app.js"`) {
				t.Errorf("the page has inline code or style: %s", m)
			}
		}
	}
	js := get(t, h, "/app.js")
	code, _ := io.ReadAll(js.Body)
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
		if strings.Contains(string(code), sink) {
			t.Errorf("app.js uses %s", sink)
		}
	}
}

func TestHeaders(t *testing.T) {
	_, h := fixture(t, dashboard.Options{})
	for target, ctype := range map[string]string{
		"/":             "text/html; charset=utf-8",
		"/app.js":       "text/javascript; charset=utf-8",
		"/app.css":      "text/css; charset=utf-8",
		"/api/devices":  "application/json",
		"/api/rollouts": "application/json",
		"/nothing":      "text/plain; charset=utf-8",
	} {
		res := get(t, h, target)
		hd := res.Header
		if hd.Get("Content-Type") != ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", target, hd.Get("Content-Type"), ctype)
		}
		csp := hd.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self';") || strings.Contains(csp, "unsafe") {
			t.Errorf("GET %s: Content-Security-Policy %q", target, csp)
		}
		if hd.Get("X-Content-Type-Options") != "nosniff" || hd.Get("X-Frame-Options") != "DENY" || hd.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("GET %s: headers %v", target, hd)
		}
	}
	if res := get(t, h, "/nothing"); res.StatusCode != 404 {
		t.Errorf("GET /nothing: %d", res.StatusCode)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/api/devices", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /api/devices: %d; the API is read-only", w.Code)
	}
	// The assets are revalidated cheaply.
	res := get(t, h, "/app.js")
	w = httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/app.js", nil)
	req.Header.Set("If-None-Match", res.Header.Get("ETag"))
	h.ServeHTTP(w, req)
	if res.Header.Get("ETag") == "" || w.Code != http.StatusNotModified {
		t.Errorf("If-None-Match %q: %d", res.Header.Get("ETag"), w.Code)
	}
}

// Mounted under a prefix, the page is at the prefix with a slash, and
// every link in it is relative.
func TestPrefix(t *testing.T) {
	_, h := fixture(t, dashboard.Options{})
	mux := http.NewServeMux()
	mux.Handle("/ops/dash/", http.StripPrefix("/ops/dash", h))
	mux.Handle("/ops/dash", http.StripPrefix("/ops/dash", h))
	res := get(t, mux, "/ops/dash?x=1")
	if res.StatusCode != http.StatusMovedPermanently || res.Header.Get("Location") != "/ops/dash/" {
		t.Errorf("GET /ops/dash: %d to %q; want a redirect to /ops/dash/", res.StatusCode, res.Header.Get("Location"))
	}
	res = get(t, mux, "/ops/dash/")
	page, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || strings.Contains(string(page), `="/`) {
		t.Errorf("GET /ops/dash/: %d, and the page must link relatively:\n%s", res.StatusCode, page)
	}
	getJSON[dashboard.DeviceList](t, mux, "/ops/dash/api/devices", 200)
	getJSON[dashboard.DevicePage](t, mux, "/ops/dash/api/devices/pi-001", 200)
	js, _ := io.ReadAll(get(t, mux, "/ops/dash/app.js").Body)
	if regexp.MustCompile(`['"\x60]/api`).Match(js) {
		t.Errorf("app.js asks for /api, not api: it would break under a prefix")
	}
}

// sse reads Server-Sent Events.
type sse struct {
	r *bufio.Reader
}

type event struct{ name, data string }

func (s sse) next() (event, error) {
	var e event
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return e, err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if e.name != "" || e.data != "" {
				return e, nil
			}
		case strings.HasPrefix(line, ":"), strings.HasPrefix(line, "retry: "):
		case strings.HasPrefix(line, "event: "):
			e.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if e.data != "" {
				return e, errors.New("two data lines in one event: " + line)
			}
			e.data = strings.TrimPrefix(line, "data: ")
		default:
			return e, errors.New("not an SSE line: " + line)
		}
	}
}

// stream opens api/stream and reads its ready event.
func stream(t *testing.T, url string) (sse, *http.Response, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/api/stream", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); res.Body.Close() })
	if res.StatusCode != 200 {
		cancel()
		return sse{}, res, cancel
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("stream Content-Type %q", ct)
	}
	s := sse{bufio.NewReader(res.Body)}
	if e, err := s.next(); err != nil || e.name != "ready" {
		t.Fatalf("first event %+v, %v; want ready", e, err)
	}
	return s, res, cancel
}

func server(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func TestStream(t *testing.T) {
	src, h := fixture(t, dashboard.Options{Interval: 50 * time.Millisecond})
	srv := server(t, h)
	s, _, _ := stream(t, srv.URL)

	// A change: the device's new row.
	src.Update("pi-009", func(d *dashboard.Device) { d.State.Converged, d.State.Phase = true, api.PhaseIdle })
	e, err := s.next()
	if err != nil || e.name != "device" {
		t.Fatalf("after a change: %+v, %v", e, err)
	}
	var r dashboard.Row
	if err := json.Unmarshal([]byte(e.data), &r); err != nil || r.ID != "pi-009" || r.Status != "converged" {
		t.Fatalf("device event: %s (%v)", e.data, err)
	}
	// A device forgotten: gone.
	src.Remove("pi-012")
	if e, err := s.next(); err != nil || e.name != "gone" || e.data != `{"id":"pi-012"}` {
		t.Fatalf("after a removal: %+v, %v", e, err)
	}
	// The Source lost track: reload.
	src.Signal("")
	if e, err := s.next(); err != nil || e.name != "reload" {
		t.Fatalf("after an overflow: %+v, %v", e, err)
	}
	// An error with newlines stays on one data line.
	src.Update("pi-001", func(d *dashboard.Device) { d.State.Error = "one\ntwo\r\nthree\n\ndata: four" })
	e, err = s.next()
	if err != nil || e.name != "device" || !strings.Contains(e.data, `one\ntwo\r\nthree\n\ndata: four`) {
		t.Fatalf("a multi-line error: %+v, %v", e, err)
	}
}

// A burst of changes costs a client one update per Interval, each device
// once in it.
func TestStreamCoalesces(t *testing.T) {
	const interval = 200 * time.Millisecond
	src, h := fixture(t, dashboard.Options{Interval: interval})
	srv := server(t, h)
	s, _, _ := stream(t, srv.URL)

	const burst = 50 // under the fake Source's buffer: nothing overflows
	began := time.Now()
	for i := 1; i <= burst; i++ {
		src.Update("pi-001", func(d *dashboard.Device) { d.State.TargetVersion = uint64(i) })
	}
	src.Update("pi-002", func(d *dashboard.Device) {})
	seen := map[string]int{}
	for seen["pi-002"] == 0 || seen["last"] == 0 {
		e, err := s.next()
		if err != nil || e.name != "device" {
			t.Fatalf("%+v, %v", e, err)
		}
		var r dashboard.Row
		json.Unmarshal([]byte(e.data), &r)
		seen[r.ID]++
		if r.ID == "pi-001" && r.TargetVersion == burst {
			seen["last"]++
		}
	}
	// Updates are at least interval apart, so in the time the burst took
	// to arrive there were at most this many (a bound that only grows on
	// a slow machine).
	most := 1 + int(time.Since(began)/interval)
	if seen["pi-001"] > most || seen["pi-001"] >= burst {
		t.Errorf("%d changes of pi-001 in %v made %d updates; want at most %d", burst, time.Since(began), seen["pi-001"], most)
	}
	t.Logf("%d changes in a burst: %d updates", burst+1, seen["pi-001"]+seen["pi-002"])
}

// Past MaxClients a stream is refused; a closed one frees its place.
func TestStreamClients(t *testing.T) {
	_, h := fixture(t, dashboard.Options{MaxClients: 2})
	srv := server(t, h)
	_, _, close1 := stream(t, srv.URL)
	stream(t, srv.URL)
	_, res, _ := stream(t, srv.URL)
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "MaxClients") {
		t.Fatalf("a third client: %d %s; want 503 with Retry-After", res.StatusCode, body)
	}
	close1()
	testbound.WaitFor(t, "a place freed by a closed stream", func() bool {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/stream", nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer res.Body.Close()
		return res.StatusCode == 200
	})
}

// A client that does not read holds no other client up: updates to the
// one that reads keep coming while the other's connection is full.
func TestStreamSlowClient(t *testing.T) {
	src, h := fixture(t, dashboard.Options{Interval: time.Millisecond})
	srv := server(t, h)
	stream(t, srv.URL) // never read again
	fast, _, _ := stream(t, srv.URL)
	big := strings.Repeat("x", 64<<10)
	const updates = 200 // 12 MiB for the slow client: more than a socket holds
	for i := 1; i <= updates; i++ {
		src.Update("pi-003", func(d *dashboard.Device) { d.State.Error = big; d.State.TargetVersion = uint64(i) })
		// In step with the fast client, so each change is an update of
		// its own for both.
		for {
			e, err := fast.next()
			if err != nil {
				t.Fatalf("update %d: %v", i, err)
			}
			var r dashboard.Row
			json.Unmarshal([]byte(e.data), &r)
			if e.name == "device" && r.TargetVersion == uint64(i) {
				break
			}
		}
	}
}
