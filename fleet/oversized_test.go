package fleet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/runtime/api"
)

// One event too large for a report (or that cannot be encoded at all) is
// numbered and delivered like any other, as a marker with its kind, id and
// Seq, "truncated": true and a message that says where the whole event
// is; the events after it follow, Seq contiguous, nothing refused by the
// consumer; the device says so at Warn once per event, with its kind and
// size.
func TestOversizedEventIsCutNotStuck(t *testing.T) {
	forEachBroker(t, func(t *testing.T, url string) {
		audit := newAuditor(t, url, "pi-030")
		logs := &capture{}
		opts := testOptions(url, "pi-030")
		opts.Logger = logs.logger(t, "device pi-030")
		d := newDeviceLogged(t, opts)
		run(t, d)
		huge := strings.Repeat("key no module handles; ", 2<<20/23) // about 2 MB, as issue 13's plan.failed
		events := []api.Event{
			{ID: "e-0", Kind: api.EventTargetAccepted, TargetVersion: 29},
			{ID: "e-1", Kind: api.EventPlanFailed, TargetVersion: 29, Message: huge},
			{ID: "e-2", Kind: api.EventTaskFailed, Time: time.Date(12025, 1, 1, 0, 0, 0, 0, time.UTC), Path: "/relays/fan", Message: "a clock in the far future"},
			{ID: "e-3", Kind: api.EventTaskFailed, Path: "/" + strings.Repeat("<", 300<<10)}, // escaped to 6 bytes each
			{ID: "e-4", Kind: api.EventTargetAccepted, TargetVersion: 30},
			{ID: "e-5", Kind: api.EventConverged, TargetVersion: 30},
			{ID: "e-6", Kind: api.EventTargetAccepted, TargetVersion: 31},
			{ID: "e-7", Kind: api.EventConverged, TargetVersion: 31},
		}
		for _, e := range events {
			if err := d.PublishEvent(t.Context(), e); err != nil {
				t.Fatalf("PublishEvent %s: %v", e.ID, err)
			}
		}
		audit.waitFor(t, uint64(len(events)))
		got := checkContiguous(t, audit, events)
		for i, want := range map[int]string{1: "event too large to send (", 2: "event could not be encoded (", 3: "event too large to send ("} {
			checkMarker(t, got[i], events[i], want)
		}
		for _, i := range []int{0, 4, 5, 6, 7} {
			if got[i].Truncated {
				t.Errorf("event %s arrived truncated: %+v", events[i].ID, got[i])
			}
		}
		// Once each, with kind and size; never again (no retry).
		waitDrained(t, d)
		for _, id := range []string{"e-1", "e-2", "e-3"} {
			if n := logs.count(slog.LevelWarn, "cut to a marker", `id=`+id, "kind=", "size="); n != 1 {
				t.Errorf("%d Warn lines about cutting %s, want 1:\n%s", n, id, logs)
			}
		}
	})
}

// A broker that drops the connection on a report over its size limit
// (Mosquitto's max_packet_size) would have the device send it again after
// every reconnect, forever, with every later event behind it. The device
// takes it for refused after a few connections lost with it in flight,
// sends a marker in its place, and cuts reports as large at once from then
// on.
func TestBrokerRefusingAReportDoesNotStopTheStream(t *testing.T) {
	t.Parallel()
	url := mosquittoWith(t, "max_packet_size 65536\n")
	audit := newAuditor(t, url, "pi-031")
	logs := &capture{}
	opts := testOptions(url, "pi-031")
	opts.Logger = logs.logger(t, "device pi-031")
	d := newDeviceLogged(t, opts)
	run(t, d)
	big := strings.Repeat("x", 100<<10) // under MaxPayload, over the broker's limit
	events := []api.Event{
		{ID: "e-0", Kind: api.EventTargetAccepted, TargetVersion: 1},
		{ID: "e-1", Kind: api.EventTaskFailed, Module: "relay", Message: big},
		{ID: "e-2", Kind: api.EventConverged, TargetVersion: 1},
	}
	for _, e := range events {
		if err := d.PublishEvent(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	audit.waitFor(t, 3)
	// Learnt: as large a report is cut before it is sent.
	later := []api.Event{
		{ID: "e-3", Kind: api.EventTaskFailed, Module: "relay", Message: big},
		{ID: "e-4", Kind: api.EventConverged, TargetVersion: 2},
	}
	for _, e := range later {
		if err := d.PublishEvent(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	audit.waitFor(t, 5)
	events = append(events, later...)
	got := checkContiguous(t, audit, events)
	checkMarker(t, got[1], events[1], "event refused by the broker (")
	checkMarker(t, got[3], events[3], "event too large to send (")
	if n := logs.count(slog.LevelWarn, "the broker dropped the connection each of the 5 times"); n != 1 {
		t.Errorf("%d Warn lines about the broker's limit, want 1:\n%s", n, logs)
	}
}

// The same broker and a state report over its limit: after a few
// connections lost with it in flight, the report goes without its state,
// "truncated": true, instead of being sent again after every reconnect.
func TestBrokerRefusingAStateReport(t *testing.T) {
	t.Parallel()
	url := mosquittoWith(t, "max_packet_size 65536\n")
	states := subscribeRaw(t, url, topics.State("pi-034"))
	logs := &capture{}
	opts := testOptions(url, "pi-034")
	opts.Logger = logs.logger(t, "device pi-034")
	d := newDeviceLogged(t, opts)
	run(t, d)
	big := json.RawMessage(fmt.Sprintf(`{"log":%q}`, strings.Repeat("s", 100<<10)))
	if err := d.PublishState(t.Context(), api.Status{TargetVersion: 3, Phase: api.PhaseRunning, State: big}); err != nil {
		t.Fatal(err)
	}
	s := stateReport(t, states) // within wait: five quick reconnects
	if !s.Truncated || s.TargetVersion != 3 || s.Phase != api.PhaseRunning {
		t.Errorf("state report the broker refused: %+v, want it truncated, the rest kept", s)
	}
	if n := logs.count(slog.LevelWarn, "the broker dropped the connection each of the 5 times", "kind=state report"); n != 1 {
		t.Errorf("%d Warn lines about the broker's limit, want 1:\n%s", n, logs)
	}
}

// A broker that drops large messages in silence (Mosquitto's
// message_size_limit acknowledges and discards them) cannot be detected:
// DeviceOptions.MaxReport set below its limit keeps every report under it.
// Event reports over it go as markers; a state report over it goes without
// its state, "truncated": true, and the next one that fits goes whole.
func TestMaxReport(t *testing.T) {
	t.Parallel()
	url := mosquittoWith(t, "message_size_limit 16384\n")
	audit := newAuditor(t, url, "pi-032")
	states := subscribeRaw(t, url, topics.State("pi-032"))
	opts := testOptions(url, "pi-032")
	opts.MaxReport = 15 << 10
	d := newDevice(t, opts)
	run(t, d)
	events := []api.Event{
		{ID: "e-0", Kind: api.EventTargetAccepted, TargetVersion: 1},
		{ID: "e-1", Kind: api.EventPlanFailed, TargetVersion: 1, Message: strings.Repeat("m", 20<<10)},
		{ID: "e-2", Kind: api.EventConverged, TargetVersion: 1},
	}
	for _, e := range events {
		if err := d.PublishEvent(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	audit.waitFor(t, 3)
	got := checkContiguous(t, audit, events)
	checkMarker(t, got[1], events[1], "over the 15360-byte limit of a report")

	bigState := json.RawMessage(fmt.Sprintf(`{"log":%q}`, strings.Repeat("s", 20<<10)))
	if err := d.PublishState(t.Context(), api.Status{TargetVersion: 1, Phase: api.PhaseIdle, State: bigState}); err != nil {
		t.Fatal(err)
	}
	s := stateReport(t, states)
	if !s.Truncated || (s.State != nil && string(s.State) != "null") || s.TargetVersion != 1 || s.Phase != api.PhaseIdle {
		t.Errorf("state report over MaxReport: %+v (state %s), want it truncated, without state, the rest kept", s, s.State)
	}
	if err := d.PublishState(t.Context(), api.Status{TargetVersion: 2, Phase: api.PhaseIdle, State: json.RawMessage(`{"a":1}`)}); err != nil {
		t.Fatal(err)
	}
	if s := stateReport(t, states); s.Truncated || string(s.State) != `{"a":1}` || s.TargetVersion != 2 {
		t.Errorf("state report that fits: %+v (state %s), want it whole", s, s.State)
	}
}

// A report left in the outbox that is over the limit (stored by a device
// whose limit was higher, before the operator lowered it to the broker's)
// is replaced in place by its marker when the device starts again, and
// numbering goes on after it: the consumer sees every Seq.
func TestOversizedReportInOutboxAcrossRestart(t *testing.T) {
	t.Parallel()
	addr := fleettest.FreeAddr(t)
	dir := t.TempDir()
	st := fleettest.StoreAt(t, dir)
	opts := testOptions("tcp://"+addr, "pi-033")
	opts.Store = st
	first := newDevice(t, opts)
	stopFirst := run(t, first) // no broker yet: everything waits in the outbox
	events := []api.Event{
		{ID: "e-0", Kind: api.EventTargetAccepted, TargetVersion: 1},
		{ID: "e-1", Kind: api.EventPlanFailed, TargetVersion: 1, Message: strings.Repeat("k", 200<<10)},
		{ID: "e-2", Kind: api.EventReplan, TargetVersion: 1},
	}
	for _, e := range events {
		if err := first.PublishEvent(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	stopFirst()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	url := mosquittoAt(t, addr, "max_packet_size 65536\n")
	audit := newAuditor(t, url, "pi-033")
	opts.Store = fleettest.StoreAt(t, dir)
	opts.MaxReport = 60 << 10
	second := newDevice(t, opts)
	run(t, second)
	more := api.Event{ID: "e-3", Kind: api.EventConverged, TargetVersion: 2}
	if err := second.PublishEvent(t.Context(), more); err != nil {
		t.Fatal(err)
	}
	events = append(events, more)
	audit.waitFor(t, 4)
	got := checkContiguous(t, audit, events)
	checkMarker(t, got[1], events[1], "over the 61440-byte limit of a report")
	if got[0].Epoch != got[3].Epoch {
		t.Errorf("epoch changed across the restart: %q then %q", got[0].Epoch, got[3].Epoch)
	}
}

func TestMaxReportOption(t *testing.T) {
	for _, tc := range []struct {
		max int
		msg string
	}{
		{-1, "MaxReport is negative"},
		{fleet.MaxPayload + 1, "over the 262144-byte limit"},
		{4 << 10, "use at least 12288"},
	} {
		o := testOptions("tcp://localhost:1883", "pi-001")
		o.Store = fleettest.Store(t)
		o.MaxReport = tc.max
		if _, err := fleet.NewDevice(o); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("MaxReport %d: got %v, want error containing %q", tc.max, err, tc.msg)
		}
	}
}

// checkContiguous checks that the consumer, after dropping duplicates, saw
// events with Seq 1..len(want), each with the id and kind of want[i], and
// refused none; it returns what it saw.
func checkContiguous(t *testing.T, a *auditor, want []api.Event) []fleet.EventReport {
	t.Helper()
	got, _ := a.deduplicated()
	a.mu.Lock()
	bad := a.bad
	a.mu.Unlock()
	if len(bad) > 0 {
		t.Errorf("the consumer refused %d reports: %v", len(bad), bad)
	}
	var seqs []string
	for _, r := range got {
		seqs = append(seqs, fmt.Sprintf("%d:%s", r.Seq, r.ID))
	}
	if len(got) != len(want) {
		t.Fatalf("consumer saw %v, want Seq 1..%d", seqs, len(want))
	}
	for i, r := range got {
		if r.Seq != uint64(i+1) || r.ID != want[i].ID || r.Kind != want[i].Kind {
			t.Fatalf("report %d: Seq %d id %q kind %s, want Seq %d id %q kind %s (all: %v)", i, r.Seq, r.ID, r.Kind, i+1, want[i].ID, want[i].Kind, seqs)
		}
	}
	return got
}

// checkMarker checks that r is the marker of e: truncated, small, kind
// and names kept, a message that says why and where the whole event is.
func checkMarker(t *testing.T, r fleet.EventReport, e api.Event, why string) {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case !r.Truncated:
		t.Errorf("event %s: not marked truncated: %.300s", e.ID, b)
	case !strings.Contains(r.Message, why) || !strings.Contains(r.Message, "full text in the device log"):
		t.Errorf("event %s: message %q, want it to say %q and where the full text is", e.ID, r.Message, why)
	case r.Kind != e.Kind || r.TargetVersion != e.TargetVersion || r.Module != e.Module:
		t.Errorf("event %s: marker %s, want kind, target version and module of the event kept", e.ID, b)
	case len(b) > 4<<10:
		t.Errorf("event %s: marker is %d bytes; it should be small", e.ID, len(b))
	}
}

// stateReport waits for the next state report on ch.
func stateReport(t *testing.T, ch <-chan string) fleet.StateReport {
	t.Helper()
	s, err := fleet.ParseStateReport([]byte(recv(t, ch, "state report")))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newDeviceLogged is newDevice with the logger of opts kept.
func newDeviceLogged(t *testing.T, opts fleet.DeviceOptions) *fleet.Device {
	t.Helper()
	if opts.Store == nil {
		opts.Store = fleettest.Store(t)
	}
	d, err := fleet.NewDevice(opts)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// capture keeps a device's log lines, level and text with attributes, to
// count them; a logger made with it also prints them if the test fails.
type capture struct {
	mu    sync.Mutex
	lines []capturedLine
}

type capturedLine struct {
	level slog.Level
	text  string
}

func (c *capture) logger(t *testing.T, name string) *slog.Logger {
	return slog.New(&captureHandler{c: c, next: fleettest.Logger(t, name).Handler()})
}

// count returns how many lines at level contain every one of words.
func (c *capture) count(level slog.Level, words ...string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
next:
	for _, l := range c.lines {
		if l.level != level {
			continue
		}
		for _, w := range words {
			if !strings.Contains(l.text, w) {
				continue next
			}
		}
		n++
	}
	return n
}

func (c *capture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, l := range c.lines {
		fmt.Fprintf(&b, "%v %.300s\n", l.level, l.text)
	}
	return b.String()
}

type captureHandler struct {
	c     *capture
	attrs []slog.Attr
	next  slog.Handler
}

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *captureHandler) Handle(ctx context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	add := func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true }
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	h.c.mu.Lock()
	h.c.lines = append(h.c.lines, capturedLine{r.Level, b.String()})
	h.c.mu.Unlock()
	return h.next.Handle(ctx, r)
}

func (h *captureHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &captureHandler{c: h.c, attrs: append(append([]slog.Attr(nil), h.attrs...), as...), next: h.next.WithAttrs(as)}
}

func (h *captureHandler) WithGroup(name string) slog.Handler {
	return &captureHandler{c: h.c, attrs: h.attrs, next: h.next.WithGroup(name)}
}

// mosquittoWith starts Mosquitto on a free port with extra lines of
// configuration (a size limit) and returns its URL; it stops when the
// test ends. fleettest's Mosquitto takes no configuration.
func mosquittoWith(t *testing.T, extra string) string {
	t.Helper()
	var err error
	for range 3 { // the free port may be taken before mosquitto binds it
		var url string
		if url, err = startMosquitto(t, fleettest.FreeAddr(t), extra); err == nil {
			return url
		}
	}
	t.Fatal(err)
	return ""
}

// mosquittoAt is mosquittoWith on addr.
func mosquittoAt(t *testing.T, addr, extra string) string {
	t.Helper()
	url, err := startMosquitto(t, addr, extra)
	if err != nil {
		t.Fatal(err)
	}
	return url
}

func startMosquitto(t *testing.T, addr, extra string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		bin = "/usr/sbin/mosquitto"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if os.Geteuid() == 0 {
		extra += "user root\n"
	}
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	config := fmt.Sprintf("listener %s %s\nallow_anonymous true\npersistence false\n%slog_dest stderr\nlog_type all\nconnection_messages true\n", port, host, extra)
	if err := os.WriteFile(conf, []byte(config), 0o644); err != nil {
		return "", err
	}
	log := &capture{}
	cmd := exec.Command(bin, "-c", conf)
	w := &lineWriter{c: log}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start %s: %w (apt-get install -y mosquitto)", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-exited:
			return "", fmt.Errorf("mosquitto on %s exited at start (%v):\n%s", addr, err, log)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			stop()
			return "", fmt.Errorf("mosquitto on %s does not accept connections:\n%s", addr, log)
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("mosquitto %s log (%s):\n%s", addr, strings.TrimSpace(extra), log)
		}
	})
	return "tcp://" + addr, nil
}

// lineWriter keeps what a process writes as log lines of a capture.
type lineWriter struct{ c *capture }

func (w *lineWriter) Write(p []byte) (int, error) {
	w.c.mu.Lock()
	w.c.lines = append(w.c.lines, capturedLine{slog.LevelInfo, strings.TrimRight(string(p), "\n")})
	w.c.mu.Unlock()
	return len(p), nil
}
