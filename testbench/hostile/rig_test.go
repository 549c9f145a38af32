package hostile_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/internal/cli"
	"github.com/tern-iot/tern/internal/daemon"
	"github.com/tern-iot/tern/internal/modfile"
	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/internal/wasmbuild"
	"github.com/tern-iot/tern/testbench"
)

// Bounds of the suite. A wait is a bound on a hang, never a speed claim:
// each is many times what an idle machine needs.
const (
	// rssBoundMiB is what ternd's resident memory (VmRSS sampled every
	// 100 ms, and VmHWM, the kernel's peak) must stay under while it runs
	// the relay module next to a hostile one. An idle ternd with both
	// modules uses well under half of it.
	rssBoundMiB = 300
	// rssGuardMiB protects the machine, not the assertion: past it the
	// sampler kills ternd (and the class fails), so that a module that
	// makes ternd grow without bound cannot take the machine's memory
	// from the other tests running on it.
	rssGuardMiB = 1536
	// convergeWait bounds one relay target's way to a converged state
	// report. The issue says "within a second or two" on an idle machine;
	// a busy CI machine with ternd processes beside it gets 20 s.
	convergeWait = 20 * time.Second
	// eventWait bounds the wait for the event that names a problem. Some
	// problems are found only at a call's deadline (10 s in ternd).
	eventWait = 45 * time.Second
	// startWait bounds a ternd's start up to its first state report with
	// both modules running.
	startWait = 60 * time.Second
	// device is every rig's device id; each rig has a fleet of its own.
	device = "dev-1"
)

// bench is what every class shares: one broker, one ternd binary, one
// operator key, the signed relay module and the compilation cache.
type bench struct {
	broker  string
	ternd   string
	keyPath string // the operator's private key file, from tern keys generate
	pub     string // its public key, as trusted_keys holds it
	priv    ed25519.PrivateKey
	relay   string // the relay module, signed, as a file
	cache   string // compiled modules, shared by every ternd of the run

	mu   sync.Mutex
	rows []row
}

// newBench builds ternd and the relay module, makes the operator key with
// tern keys generate and starts Mosquitto.
func newBench(t *testing.T) *bench {
	t.Helper()
	if _, err := exec.LookPath("wat2wasm"); err != nil {
		t.Fatal("wat2wasm not found: the hostile modules are WebAssembly text; install wabt (apt-get install wabt)")
	}
	b := &bench{broker: fleettest.Mosquitto(t)} // fails the test if mosquitto is missing
	dir := t.TempDir()
	b.cache = filepath.Join(dir, "cache")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var err error
	if b.ternd, err = testbench.TerndBinary(ctx); err != nil {
		t.Fatal(err)
	}

	keys := filepath.Join(dir, "keys")
	if err := os.MkdirAll(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := tern(ctx, "keys", "generate", "operator", "--dir", keys); err != nil {
		t.Fatalf("tern keys generate: %v\n%s", err, out)
	}
	b.keyPath = filepath.Join(keys, "operator.key")
	pub, err := os.ReadFile(filepath.Join(keys, "operator.pub"))
	if err != nil {
		t.Fatal(err)
	}
	b.pub = strings.TrimSpace(string(pub))
	if b.priv, err = signing.ReadPrivate(b.keyPath); err != nil {
		t.Fatal(err)
	}

	relay, err := wasmbuild.Cached("github.com/tern-iot/tern/plugins/relay")
	if err != nil {
		t.Fatal(err)
	}
	b.relay = filepath.Join(dir, "relay.wasm")
	b.writeSigned(t, b.relay, relay)
	return b
}

// writeSigned signs a module as tern module sign does and writes it.
func (b *bench) writeSigned(t *testing.T, path string, wasm []byte) {
	t.Helper()
	signed, err := modfile.Sign(wasm, b.priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, signed, 0o644); err != nil {
		t.Fatal(err)
	}
}

// tern runs the operator command, as a library: the code path of the
// tern binary. It returns stdout, or an error carrying stderr.
func tern(ctx context.Context, args ...string) (string, error) {
	var out, errb bytes.Buffer
	if code := cli.MainContext(ctx, args, &out, &errb); code != cli.ExitOK {
		return out.String(), fmt.Errorf("tern %s: exit status %d: %s", args[0], code, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// rig is one ternd process on the sim board with two modules, relay
// (granted GPIO17) and evil (granted GPIO27, an I2C device and a serial
// port), in a fleet of its own, and what the fleet sees of it.
type rig struct {
	t      *testing.T
	b      *bench
	class  string
	topics fleet.Topics
	dir    string
	proc   *testbench.ProcessAgent
	obs    *observer
	rss    *rssSampler

	version   uint64   // the last target version pushed
	latencies []string // of the relay flips, for the table
	stuck     bool     // a relay flip did not converge: later ones are skipped
}

// startRig writes ternd.yaml, subscribes to the device's topics, starts
// ternd and waits until its state report shows both modules running.
func startRig(t *testing.T, b *bench, class string) *rig {
	t.Helper()
	r := &rig{t: t, b: b, class: class, topics: fleet.Topics{Fleet: "h-" + class}, dir: t.TempDir()}
	evil := filepath.Join(r.dir, "evil.wasm")
	b.writeSigned(t, evil, assembleFile(t, "evil-1.0.0.wat"))

	relay := daemon.ModuleConfig{Name: "relay", Path: b.relay, Config: map[string]any{"lines": map[string]string{"heater": "GPIO17"}}}
	relay.Grants.GPIO = []string{"GPIO17"}
	hostile := daemon.ModuleConfig{Name: "evil", Path: evil}
	hostile.Grants.GPIO = []string{"GPIO27"}
	hostile.Grants.I2C = []string{"i2c1:0x48"}
	hostile.Grants.Serial = []string{"ttyS0@9600"}
	celsius := 20.0
	cfg := daemon.Config{
		Device: device, Fleet: r.topics.Fleet, Broker: b.broker, Board: "sim", LogLevel: "info",
		CacheDir: b.cache, TrustedKeys: []string{b.pub},
		Modules: []daemon.ModuleConfig{relay, hostile},
		Sim:     sim.BoardSpec{I2C: []sim.ChipSpec{{At: "i2c1:0x48", Chip: "tmp102", Celsius: &celsius}}},
	}

	r.obs = observe(t, b.broker, r.topics)
	ctx, cancel := context.WithTimeout(context.Background(), startWait)
	defer cancel()
	p, err := testbench.StartProcess(ctx, testbench.ProcessOptions{
		Config: cfg, Dir: r.dir, Binary: b.ternd, ReadyTimeout: startWait, StopTimeout: 3 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.proc = p
	r.rss = sampleRSS(p)
	t.Cleanup(func() {
		r.rss.stop()
		if err := p.Kill(); err != nil {
			t.Log(err)
		}
		if t.Failed() {
			var tail []string
			for _, l := range strings.Split(p.Tail(60), "\n") {
				tail = append(tail, clip(l, 600))
			}
			t.Logf("ternd log (last 60 lines):\n%s", strings.Join(tail, "\n"))
			t.Logf("events from the device:\n%s", r.obs.summary(0, 40))
		}
	})
	r.waitState("both modules running", startWait, func(s state) bool {
		return s.Modules["evil"] == "1.0.0" && s.Modules["relay"] != ""
	})
	return r
}

// alive fails the test now if ternd is no longer running.
func (r *rig) alive(when string) {
	r.t.Helper()
	if r.rss.tripped() {
		r.t.Fatalf("%s: ternd's RSS passed %d MiB and the sampler killed it to protect the machine (bound %d MiB)", when, rssGuardMiB, rssBoundMiB)
	}
	if !r.proc.Running() {
		r.t.Fatalf("%s: ternd is no longer running; %s", when, crashReport(r.proc.Log()))
	}
}

// crashReport is the part of a dead ternd's log that says why: from Go's
// "fatal error:" or "panic:" on, or else its last lines.
func crashReport(log string) string {
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "fatal error:") || strings.HasPrefix(l, "panic:") || strings.HasPrefix(l, "runtime: out of memory") {
			end := min(len(lines), i+12)
			for j := range lines[i:end] {
				lines[i+j] = clip(lines[i+j], 300)
			}
			return "it died with:\n" + strings.Join(lines[i:end], "\n")
		}
	}
	tail := lines[max(0, len(lines)-20):]
	for j := range tail {
		tail[j] = clip(tail[j], 300)
	}
	return "its log ends:\n" + strings.Join(tail, "\n")
}

// push sends a target for the device through tern push (signed), as the
// next version, and returns the version.
func (r *rig) push(target string) uint64 {
	r.t.Helper()
	r.version++
	ctx, cancel := context.WithTimeout(context.Background(), convergeWait)
	defer cancel()
	if out, err := tern(ctx, "push", "--broker", r.b.broker, "--fleet", r.topics.Fleet, "--device", device,
		"--key", r.b.keyPath, "--version", strconv.FormatUint(r.version, 10), target); err != nil {
		r.t.Fatalf("%v\n%s", err, out)
	}
	return r.version
}

// flip pushes a relay target and waits until the state report says the
// device converged on it with the heater as asked; it records how long
// that took and fails the test (not at once) past bound. Once a flip has
// failed, later ones are skipped: they would only wait out their bounds.
func (r *rig) flip(on bool, bound time.Duration, when string) {
	r.t.Helper()
	r.alive(when)
	if r.stuck {
		r.t.Logf("%s: relay flip to heater=%t skipped: an earlier one did not converge", when, on)
		r.latencies = append(r.latencies, "skipped")
		return
	}
	start := time.Now()
	v := r.push(fmt.Sprintf(`{"relays":{"heater":%t}}`, on))
	ok := r.obs.wait(bound, r.proc, func(o *observer) bool {
		s := o.last
		return s.TargetVersion == v && s.Converged && s.heater() == on
	})
	took := time.Since(start)
	if !ok {
		r.alive(when)
		r.t.Errorf("%s: the relay module did not converge on heater=%t (target version %d) within %v; last state report: %s",
			when, on, v, bound, r.obs.lastState())
		r.latencies = append(r.latencies, "none")
		r.stuck = true
		return
	}
	r.latencies = append(r.latencies, took.Round(10*time.Millisecond).String())
	r.t.Logf("%s: relay converged on heater=%t (v%d) in %v", when, on, v, took.Round(time.Millisecond))
}

// release publishes wasm as a release of module evil with tern release
// (which signs the module and the release). When tern release itself
// refuses to make the release (its own checks are the operator's first
// line, not the device's), the same signed release is made with the fleet
// library and published raw: the device must hold against what a careless
// or compromised operator key can sign.
func (r *rig) release(wasm []byte, version uint64) {
	r.t.Helper()
	path := filepath.Join(r.dir, fmt.Sprintf("release-%d.wasm", version))
	if err := os.WriteFile(path, wasm, 0o644); err != nil {
		r.t.Fatal(err)
	}
	out, err := ternRelease(r.b, r.topics.Fleet, path, "--version", strconv.FormatUint(version, 10))
	if err == nil {
		r.t.Logf("tern release: %s", clip(strings.TrimSpace(out), 300))
		return
	}
	r.t.Logf("tern release refused to make the release (%v); publishing it with the fleet library instead", err)
	r.publishRaw(r.topics.Module("evil"), r.b.libraryRelease(r.t, r.topics, wasm, version))
}

// ternRelease runs tern release --module evil for fleet with the
// operator's key and extra flags.
func ternRelease(b *bench, fleetName, path string, extra ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), convergeWait)
	defer cancel()
	args := append([]string{"release", "--broker", b.broker, "--fleet", fleetName, "--key", b.keyPath, "--module", "evil"}, extra...)
	return tern(ctx, append(args, path)...)
}

// libraryRelease makes the payload tern release would, with the fleet
// library: the module signed (tern module sign), the envelope for the
// fleet's topics, signed. It makes what tern release refuses to make
// (a version above the ceiling), for the device to refuse.
func (b *bench) libraryRelease(t *testing.T, topics fleet.Topics, wasm []byte, version uint64) []byte {
	t.Helper()
	man, ok, err := modfile.Manifest(wasm)
	if err != nil || !ok {
		t.Fatalf("release %d: no readable manifest section (%v): the test must add one", version, err)
	}
	signed, err := modfile.Sign(wasm, b.priv)
	if err != nil {
		t.Fatalf("release %d: sign the module: %v", version, err)
	}
	env := fleet.NewRelease("evil", version, signed)
	env.ModuleVersion = man.Version
	env.SetTopics(topics)
	env.Sign(b.priv)
	payload, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return payload
}

// publishRaw publishes a retained QoS 1 message with a plain MQTT client,
// as mosquitto_pub -r -q 1 would.
func (r *rig) publishRaw(topic string, payload []byte) {
	r.t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(r.b.broker).SetClientID(fmt.Sprintf("hostile-pub-%s-%d", r.class, time.Now().UnixNano())).
		SetConnectTimeout(5 * time.Second).SetWriteTimeout(convergeWait))
	if tok := c.Connect(); !tok.WaitTimeout(convergeWait) || tok.Error() != nil {
		r.t.Fatalf("raw publisher: connect to %s: %v", r.b.broker, tok.Error())
	}
	defer c.Disconnect(100)
	if tok := c.Publish(topic, 1, true, payload); !tok.WaitTimeout(convergeWait) || tok.Error() != nil {
		r.t.Fatalf("raw publisher: publish %d bytes on %s: %v", len(payload), topic, tok.Error())
	}
}

// waitState waits for a state report that satisfies ok, failing the test
// at once past within.
func (r *rig) waitState(what string, within time.Duration, ok func(state) bool) {
	r.t.Helper()
	if !r.obs.wait(within, r.proc, func(o *observer) bool { return o.states > 0 && ok(o.last) }) {
		r.alive("waiting for " + what)
		r.t.Fatalf("no state report with %s within %v; last: %s", what, within, r.obs.lastState())
	}
}

// outcome waits for the first event from module evil, after mark, that
// decides a release: module.installed, module.refused or
// module.rolled_back. ok is false if none came within the wait.
func (r *rig) outcome(mark int, within time.Duration) (event, bool) {
	r.t.Helper()
	return r.firstEvent(mark, within, func(e event) bool {
		return e.Module == "evil" && (e.Kind == "module.installed" || e.Kind == "module.refused" || e.Kind == "module.rolled_back")
	})
}

// firstEvent waits for the first event after mark that matches.
func (r *rig) firstEvent(mark int, within time.Duration, match func(event) bool) (event, bool) {
	r.t.Helper()
	var found event
	ok := r.obs.wait(within, r.proc, func(o *observer) bool {
		for _, e := range o.events[min(mark, len(o.events)):] {
			if match(e) {
				found = e
				return true
			}
		}
		return false
	})
	return found, ok
}

// expectRefused waits for the release's outcome and checks it is a
// module.refused event whose message says each of words
// (case-insensitive).
func (r *rig) expectRefused(mark int, words ...string) {
	r.t.Helper()
	e, ok := r.outcome(mark, eventWait)
	switch {
	case !ok:
		r.alive("waiting for the release's outcome")
		r.t.Errorf("no module.installed, module.refused or module.rolled_back event for evil within %v of the release; events since:\n%s",
			eventWait, r.obs.summary(mark, 20))
	case e.Kind != "module.refused":
		r.t.Errorf("the hostile release was not refused: %s %q", e.Kind, clip(e.Message, 300))
	case !containsAll(e.Message, words):
		r.t.Errorf("the release was refused, but the event does not name the problem (want %q): %q", words, clip(e.Message, 300))
	default:
		r.t.Logf("refused as expected: %q", clip(e.Message, 300))
	}
}

// expectEvent waits for an event about evil whose message says each of
// words (case-insensitive), of one of kinds (any kind when none).
func (r *rig) expectEvent(mark int, within time.Duration, kinds []string, words ...string) (event, bool) {
	r.t.Helper()
	e, ok := r.firstEvent(mark, within, func(e event) bool {
		return e.about("evil") && (len(kinds) == 0 || contains(kinds, e.Kind)) && containsAll(e.Message, words)
	})
	if !ok {
		r.alive(fmt.Sprintf("waiting for an event saying %q", words))
		what := "no event"
		if len(kinds) > 0 {
			what += " " + strings.Join(kinds, "|")
		}
		r.t.Errorf("%s about evil saying %q within %v; events since:\n%s", what, words, within, r.obs.summary(mark, 25))
		return e, false
	}
	r.t.Logf("event as expected: %s %q", e.Kind, clip(e.Message, 300))
	return e, true
}

// window lets the device run for d (a measuring window for counts, not a
// wait for something to happen), failing at once if ternd dies.
func (r *rig) window(d time.Duration) {
	r.t.Helper()
	select {
	case <-time.After(d):
	case <-r.proc.Exited():
	}
	r.alive("during the counting window")
}

// finish makes the common checks of every class: ternd up and answering
// (a relay target after the hostile module's doing still converges), its
// RSS under the bound; and records the class's row.
func (r *rig) finish() {
	r.t.Helper()
	r.flip(true, convergeWait, "after")
	r.flip(false, convergeWait, "after")
	r.alive("at the end")
	peak, hwm := r.rss.peak(), readStatus(r.proc.PID(), "VmHWM")
	if peak > rssBoundMiB<<10 || hwm > rssBoundMiB<<10 {
		r.t.Errorf("ternd's memory passed the %d MiB bound: VmRSS peaked at %d MiB (sampled), VmHWM %d MiB", rssBoundMiB, peak>>10, hwm>>10)
	}
	r.t.Logf("ternd RSS: peak %d MiB sampled, VmHWM %d MiB; %d events from the device", peak>>10, hwm>>10, r.obs.count(0, func(event) bool { return true }))
}

// record adds the class's row to the bench's table, once the class's
// verdict is known.
func (r *rig) record() {
	peak, hwm := r.rss.peak(), readStatus(r.proc.PID(), "VmHWM")
	if hwm == 0 {
		hwm = r.rss.hwm()
	}
	verdict := "pass"
	if r.t.Failed() {
		verdict = "FAIL"
	}
	r.b.mu.Lock()
	defer r.b.mu.Unlock()
	r.b.rows = append(r.b.rows, row{
		class: r.class, verdict: verdict, rssKiB: peak, hwmKiB: hwm, latencies: strings.Join(r.latencies, " "),
		events: r.obs.count(0, func(event) bool { return true }), alive: r.proc.Running(),
	})
}

// row is one class in the table the suite logs at the end.
type row struct {
	class, verdict string
	rssKiB, hwmKiB int64
	latencies      string
	events         int
	alive          bool
}

// event is an event report as a consumer reads it (docs/mqtt.md).
type event struct {
	Seq           uint64 `json:"seq"`
	Epoch         string `json:"epoch"`
	ID            string `json:"id"`
	Kind          string `json:"kind"`
	TargetVersion uint64 `json:"target_version"`
	Module        string `json:"module"`
	Job           string `json:"job"`
	Path          string `json:"path"`
	Message       string `json:"message"`
	size          int
}

// about reports whether the event concerns module m.
func (e event) about(m string) bool {
	return e.Module == m || strings.Contains(e.Message, m)
}

// state is a state report (docs/mqtt.md).
type state struct {
	TargetVersion uint64            `json:"target_version"`
	Converged     bool              `json:"converged"`
	Phase         string            `json:"phase"`
	Error         string            `json:"error"`
	State         json.RawMessage   `json:"state"`
	Modules       map[string]string `json:"modules"`
	Time          time.Time         `json:"time"`
	size          int
}

// heater is the sensed relays.heater, false if absent.
func (s state) heater() bool {
	var doc struct {
		Relays struct {
			Heater bool `json:"heater"`
		} `json:"relays"`
	}
	_ = json.Unmarshal(s.State, &doc)
	return doc.Relays.Heater
}

// observer is a consumer of one device's topics: every event (deduplicated
// by epoch and seq, as docs/mqtt.md says a careful consumer does) and the
// latest state report.
type observer struct {
	mu        sync.Mutex
	changed   chan struct{} // closed and replaced on every message
	events    []event
	seen      map[string]bool
	last      state
	states    int
	maxState  int // bytes of the largest state report
	maxEvent  int // bytes of the largest event report
	badReport []string
	// sensed keeps, per top-level state key starting with "evil", the
	// distinct values the state reports showed, in order.
	sensed map[string][]string
}

// observe subscribes to tern/<fleet>/devices/<id>/# before anything is
// started or pushed, so that no event is missed.
func observe(t *testing.T, broker string, topics fleet.Topics) *observer {
	t.Helper()
	o := &observer{changed: make(chan struct{}), seen: map[string]bool{}, sensed: map[string][]string{}}
	c := paho.NewClient(paho.NewClientOptions().AddBroker(broker).
		SetClientID(fmt.Sprintf("hostile-obs-%s-%d", topics.Fleet, time.Now().UnixNano())).
		SetConnectTimeout(5 * time.Second).SetAutoReconnect(true).SetCleanSession(true))
	if tok := c.Connect(); !tok.WaitTimeout(startWait) || tok.Error() != nil {
		t.Fatalf("observer: connect to %s: %v", broker, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	filter := strings.TrimSuffix(topics.State(device), "state") + "#"
	if tok := c.Subscribe(filter, 1, o.handle); !tok.WaitTimeout(startWait) || tok.Error() != nil {
		t.Fatalf("observer: subscribe to %s: %v", filter, tok.Error())
	}
	return o
}

func (o *observer) handle(_ paho.Client, m paho.Message) {
	o.mu.Lock()
	defer o.mu.Unlock()
	p := m.Payload()
	switch {
	case strings.HasSuffix(m.Topic(), "/events"):
		var e event
		if err := json.Unmarshal(p, &e); err != nil {
			o.badReport = append(o.badReport, fmt.Sprintf("event of %d bytes: %v", len(p), err))
			break
		}
		e.size = len(p)
		o.maxEvent = max(o.maxEvent, len(p))
		key := e.Epoch + "/" + strconv.FormatUint(e.Seq, 10)
		if e.Seq == 0 {
			key = "id/" + e.ID
		}
		if o.seen[key] {
			break
		}
		o.seen[key] = true
		o.events = append(o.events, e)
	case strings.HasSuffix(m.Topic(), "/state"):
		if len(p) == 0 {
			break
		}
		var s state
		if err := json.Unmarshal(p, &s); err != nil {
			o.badReport = append(o.badReport, fmt.Sprintf("state report of %d bytes: %v", len(p), err))
			break
		}
		s.size = len(p)
		o.maxState = max(o.maxState, len(p))
		o.last = s
		o.states++
		var doc map[string]json.RawMessage
		_ = json.Unmarshal(s.State, &doc)
		for k, v := range doc {
			if strings.HasPrefix(k, "evil") && !contains(o.sensed[k], string(v)) {
				o.sensed[k] = append(o.sensed[k], string(v))
			}
		}
	}
	close(o.changed)
	o.changed = make(chan struct{})
}

// wait waits until ok holds (checked under the observer's lock after
// every message), the process exits, or within passes.
func (o *observer) wait(within time.Duration, p *testbench.ProcessAgent, ok func(*observer) bool) bool {
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		o.mu.Lock()
		done, ch := ok(o), o.changed
		o.mu.Unlock()
		if done {
			return true
		}
		select {
		case <-ch:
		case <-p.Exited():
			o.mu.Lock()
			done = ok(o)
			o.mu.Unlock()
			return done
		case <-deadline.C:
			return false
		}
	}
}

// mark is the position of the next event, to look only at what follows.
func (o *observer) mark() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.events)
}

// indexOf is the position of an event seen, by epoch and seq; 0 if none.
func (o *observer) indexOf(e event) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, x := range o.events {
		if x.Epoch == e.Epoch && x.Seq == e.Seq && x.ID == e.ID {
			return i
		}
	}
	return 0
}

// snapshot is the latest state report.
func (o *observer) snapshot() state {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.last
}

// count counts the events since mark that match.
func (o *observer) count(mark int, match func(event) bool) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, e := range o.events[min(mark, len(o.events)):] {
		if match(e) {
			n++
		}
	}
	return n
}

func (o *observer) lastState() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.states == 0 {
		return "none"
	}
	s := o.last
	return fmt.Sprintf("v%d converged=%t phase=%s error=%q state=%s modules=%s (%d bytes)",
		s.TargetVersion, s.Converged, s.Phase, clip(s.Error, 200), clip(string(s.State), 200), clip(fmt.Sprint(s.Modules), 200), s.size)
}

// summary lists up to n events since mark, one a line, the latest last.
func (o *observer) summary(mark, n int) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	evs := o.events[min(mark, len(o.events)):]
	var b strings.Builder
	if len(evs) > n {
		fmt.Fprintf(&b, "  … %d earlier events\n", len(evs)-n)
		evs = evs[len(evs)-n:]
	}
	for _, e := range evs {
		fmt.Fprintf(&b, "  #%d %s v%d %s.%s %s %q\n", e.Seq, e.Kind, e.TargetVersion, e.Module, e.Job, e.Path, clip(e.Message, 200))
	}
	if len(o.events[min(mark, len(o.events)):]) == 0 {
		b.WriteString("  (none)\n")
	}
	for _, bad := range o.badReport {
		fmt.Fprintf(&b, "  unreadable: %s\n", bad)
	}
	return b.String()
}

// rssSampler reads ternd's VmRSS every 100 ms, keeps the peak and kills
// ternd past rssGuardMiB.
type rssSampler struct {
	done chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	max     int64 // KiB
	lastHWM int64 // KiB
	killed  bool
}

func sampleRSS(p *testbench.ProcessAgent) *rssSampler {
	s := &rssSampler{done: make(chan struct{})}
	pid := p.PID()
	s.wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			rss, hwm := readStatus(pid, "VmRSS"), readStatus(pid, "VmHWM")
			s.mu.Lock()
			s.max = max(s.max, rss)
			s.lastHWM = max(s.lastHWM, hwm)
			over := rss > rssGuardMiB<<10 && !s.killed
			if over {
				s.killed = true
			}
			s.mu.Unlock()
			if over {
				p.Kill()
			}
			select {
			case <-s.done:
				return
			case <-p.Exited():
				return
			case <-tick.C:
			}
		}
	})
	return s
}

func (s *rssSampler) stop() {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	s.wg.Wait()
}

func (s *rssSampler) peak() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.max
}

func (s *rssSampler) hwm() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastHWM
}

func (s *rssSampler) tripped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.killed
}

// readStatus reads a field of /proc/<pid>/status in KiB; 0 when the
// process is gone.
func readStatus(pid int, field string) int64 {
	if pid == 0 {
		return 0
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }

// containsAll reports whether s says every word, ignoring case.
func containsAll(s string, words []string) bool {
	low := strings.ToLower(s)
	for _, w := range words {
		if !strings.Contains(low, strings.ToLower(w)) {
			return false
		}
	}
	return true
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("… (%d bytes)", len(s))
}
