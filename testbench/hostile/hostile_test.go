package hostile_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// slowSensorBound is how soon a relay target must converge while a
// sensor of another module sleeps through every call up to its deadline
// (10 s in ternd): less than that deadline, or the agent waited for the
// sensor.
const slowSensorBound = 9 * time.Second

// floodWindow is how long the flood classes count events.
const floodWindow = 5 * time.Second

// A class is one kind of hostile module: its body releases the module to
// a running ternd (and pushes a target to reach it when the hostile code
// is in a job) and checks what the device did about it. Every class then
// checks the same: ternd is up, a relay target still converges, ternd's
// RSS stayed under rssBoundMiB.
type class struct {
	name string
	body func(t *testing.T, r *rig)
}

var classes = []class{
	// Decode bombs: refused before anything is allocated for the count,
	// with a message naming the count.
	{"decode-bomb-elem-init-count", decodeBombClass("elem-init-count")},
	{"decode-bomb-type-param-count", decodeBombClass("type-param-count")},
	{"decode-bomb-type-result-count", decodeBombClass("type-result-count")},
	{"decode-bomb-name-function-count", decodeBombClass("name-function-count")},
	{"decode-bomb-name-local-count", decodeBombClass("name-local-count")},
	{"decode-bomb-data-size", decodeBombClass("data-size")},
	{"decode-bomb-br_table-count", decodeBombClass("br_table-count")},

	{"table-hog", tableHog},
	{"stack-overflow", stackOverflow},
	{"compile-bomb", compileBombClass},
	{"hang-initialize", refusedAtLoad(released("hang-initialize.wat"), "_initialize", "deadline")},
	{"unknown-import", refusedAtLoad(released("unknown-import.wat"), "env", "foo")},
	{"cross-module-actuation", crossModule},
	{"sensor-overwrites-relays", sensorOverwrite},
	{"refusal-flood", refusalFlood},
	{"manifest-bomb", manifestBombClass},
	{"slow-sensor", slowSensor},
	{"gpio-write-flood", gpioFlood},
	{"randomness", randomness},

	{"release-version-max", releaseVersionMax},
	{"release-same-version-other-code", releaseSameVersion},
	{"release-for-another-fleet", releaseOtherFleet},
}

// TestSandboxHolds is the acceptance test of "the sandbox holds against
// any module": each class of hostile module arrives as a signed release,
// over Mosquitto, at a ternd process of its own, beside the relay module.
// At the end it logs a table of the classes with ternd's memory.
func TestSandboxHolds(t *testing.T) {
	b := newBench(t)
	t.Run("class", func(t *testing.T) {
		for _, c := range classes {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				r := startRig(t, b, c.name)
				t.Cleanup(r.record)
				c.body(t, r)
				r.finish()
			})
		}
	})
	logTable(t, b)
}

// logTable logs one line per class: verdict, ternd's memory, relay
// convergence times.
func logTable(t *testing.T, b *bench) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var s strings.Builder
	fmt.Fprintf(&s, "ternd memory per class (bound %d MiB; VmRSS sampled every 100 ms, VmHWM from the kernel):\n", rssBoundMiB)
	fmt.Fprintf(&s, "%-34s %-7s %9s %9s %6s %7s  %s\n", "class", "verdict", "VmRSS", "VmHWM", "alive", "events", "relay convergence (during… after)")
	byName := map[string]row{}
	for _, r := range b.rows {
		byName[r.class] = r
	}
	for _, c := range classes {
		r, ok := byName[c.name]
		if !ok {
			fmt.Fprintf(&s, "%-34s %-7s\n", c.name, "not run")
			continue
		}
		fmt.Fprintf(&s, "%-34s %-7s %5d MiB %5d MiB %6t %7d  %s\n", r.class, r.verdict, r.rssKiB>>10, r.hwmKiB>>10, r.alive, r.events, r.latencies)
	}
	t.Log(s.String())
}

// decodeBombClass releases a decode bomb: the device must refuse it with
// a module.refused event naming the count (4294967295), and stay up.
func decodeBombClass(kind string) func(t *testing.T, r *rig) {
	return func(t *testing.T, r *rig) {
		wasm := decodeBomb(kind)(t)
		t.Logf("decode bomb %s: %s", kind, describe(wasm))
		mark := r.obs.mark()
		r.release(wasm, 2)
		r.flip(true, convergeWait, "during")
		r.expectRefused(mark, strconv.FormatUint(maxU32, 10))
	}
}

// refusedAtLoad releases a module that must not load: refused with an
// event saying each of words, while the relay converges.
func refusedAtLoad(module func(*testing.T) []byte, words ...string) func(t *testing.T, r *rig) {
	return func(t *testing.T, r *rig) {
		mark := r.obs.mark()
		r.release(module(t), 2)
		r.flip(true, convergeWait, "during")
		r.expectRefused(mark, words...)
	}
}

// installed waits for the release's outcome and fails the test now
// unless the module was installed: the classes whose hostility is in a
// call need it running.
func (r *rig) installed(mark int, version string) {
	r.t.Helper()
	e, ok := r.outcome(mark, eventWait)
	switch {
	case !ok:
		r.alive("waiting for the release to install")
		r.t.Fatalf("no module.installed event for evil %s within %v; events since:\n%s", version, eventWait, r.obs.summary(mark, 20))
	case e.Kind != "module.installed":
		r.t.Fatalf("the release of evil %s, a valid module whose hostility is in its calls, was not installed: %s %q", version, e.Kind, clip(e.Message, 300))
	}
}

// Table hog: the run grows a funcref table by 2^27 entries and fills it.
func tableHog(t *testing.T, r *rig) {
	mark := r.obs.mark()
	r.release(released("table-hog.wat")(t), 2)
	e, ok := r.outcome(mark, eventWait)
	if ok && e.Kind == "module.refused" && containsAll(e.Message, []string{"table"}) {
		t.Logf("refused at load, naming the table: %q", clip(e.Message, 300))
		return
	}
	if !ok || e.Kind != "module.installed" {
		r.alive("waiting for the release to install")
		t.Fatalf("the table hog was neither installed nor refused naming the table: %s %q; events:\n%s", e.Kind, clip(e.Message, 300), r.obs.summary(mark, 20))
	}
	mark = r.obs.mark()
	v := r.push(`{"evil":{"x":true}}`)
	e, ok = r.firstEvent(mark, eventWait, func(e event) bool {
		return e.about("evil") && containsAll(e.Message, []string{"table"}) ||
			e.Module == "evil" && e.Kind == "task.done" && e.TargetVersion == v
	})
	switch {
	case !ok:
		r.alive("waiting for the table to grow")
		t.Errorf("no event naming the table budget, and evil's run did not finish, within %v; events since:\n%s", eventWait, r.obs.summary(mark, 20))
	case e.Kind == "task.done":
		t.Errorf("evil's run grew its table by 2^27 entries (1 GiB) and filled it, and the task succeeded: no table budget held (ternd's VmRSS now %d MiB)",
			readStatus(r.proc.PID(), "VmRSS")>>10)
	default:
		t.Logf("the table budget held: %s %q", e.Kind, clip(e.Message, 300))
	}
}

// Stack overflow: unbounded recursion in a job's run and in a sensor.
func stackOverflow(t *testing.T, r *rig) {
	mark := r.obs.mark()
	r.release(released("stack-overflow.wat")(t), 2)
	r.installed(mark, "2.0.0")
	r.push(`{"evil":{"x":true}}`)
	r.expectEvent(mark, eventWait, nil, "stack overflow")
	t.Logf("%d events naming the stack overflow", r.obs.count(mark, func(e event) bool {
		return e.about("evil") && containsAll(e.Message, []string{"stack overflow"})
	}))
}

// Compile bomb: one function of 100,000 nested blocks. The relay target
// pushed right after the release must converge while the device deals
// with the bomb.
func compileBombClass(t *testing.T, r *rig) {
	wasm := compileBomb(t)
	t.Logf("compile bomb: %s", describe(wasm))
	mark := r.obs.mark()
	r.release(wasm, 2)
	r.flip(true, convergeWait, "during the compile")
	e, ok := r.outcome(mark, eventWait)
	switch {
	case !ok:
		r.alive("waiting for the compile bomb's outcome")
		t.Errorf("no outcome (installed or refused) for the compile bomb within %v; events since:\n%s", eventWait, r.obs.summary(mark, 20))
	case e.Kind != "module.refused":
		t.Errorf("the compile bomb was not refused: %s %q", e.Kind, clip(e.Message, 300))
	case !containsAll(e.Message, []string{"nest"}) && !containsAll(e.Message, []string{"compil"}):
		t.Errorf("the compile bomb was refused, but the event names neither the nesting nor a compile bound: %q", clip(e.Message, 300))
	default:
		t.Logf("refused as expected: %q", clip(e.Message, 300))
	}
}

// Cross-module actuation: evil's method expands into relay.switch on
// /relays/heater, with no grant on GPIO17.
func crossModule(t *testing.T, r *rig) {
	mark := r.obs.mark()
	r.release(released("cross-module.wat")(t), 2)
	e, ok := r.outcome(mark, eventWait)
	if ok && e.Kind == "module.refused" && containsAll(e.Message, []string{"relay"}) {
		t.Logf("refused at load, naming the relay module: %q", clip(e.Message, 300))
		return
	}
	if !ok || e.Kind != "module.installed" {
		r.alive("waiting for the release to install")
		t.Fatalf("the cross-module release was neither installed nor refused naming relay: %s %q", e.Kind, clip(e.Message, 300))
	}
	if r.obs.snapshot().heater() {
		t.Fatalf("the heater is on before the test: %s", r.obs.lastState())
	}
	mark = r.obs.mark()
	v := r.push(`{"evil":{"x":true}}`)
	relayTask := func(e event) bool {
		return e.Module == "relay" && e.TargetVersion == v && strings.HasPrefix(e.Kind, "task.")
	}
	e, ok = r.firstEvent(mark, eventWait, func(e event) bool {
		return relayTask(e) || e.about("evil") && containsAll(e.Message, []string{"relay.switch"})
	})
	switch {
	case !ok:
		r.alive("waiting for the expansion's fate")
		t.Errorf("within %v, neither an event naming the refused relay.switch expansion nor a relay task; events since:\n%s", eventWait, r.obs.summary(mark, 20))
	case relayTask(e):
		t.Errorf("evil's method made the relay module run %s on %s (%s %q): a module with no grant on GPIO17 switched it", e.Job, e.Path, e.Kind, clip(e.Message, 200))
	default:
		t.Logf("expansion refused: %s %q", e.Kind, clip(e.Message, 300))
	}
	// Whatever the plan for v became, it must not have switched GPIO17.
	r.obs.wait(convergeWait, r.proc, func(o *observer) bool {
		return o.last.TargetVersion == v && (o.last.Converged || o.last.Phase == "failed")
	})
	if n := r.obs.count(mark, relayTask); n > 0 && !relayTask(e) {
		t.Errorf("%d relay task events for evil's target v%d: the relay module ran for evil", n, v)
	}
	if r.obs.snapshot().heater() {
		t.Errorf("GPIO17 is on after evil's target v%d: %s", v, r.obs.lastState())
	}
}

// Sensor on another module's path: evil's sensor reports /relays.
func sensorOverwrite(t *testing.T, r *rig) {
	mark := r.obs.mark()
	r.release(released("sensor-overwrite.wat")(t), 2)
	e, ok := r.outcome(mark, eventWait)
	if ok && e.Kind == "module.refused" {
		if !containsAll(e.Message, []string{"/relays"}) {
			t.Errorf("refused, but the event does not name the path /relays: %q", clip(e.Message, 300))
		} else {
			t.Logf("refused at load: %q", clip(e.Message, 300))
		}
		return
	}
	if !ok || e.Kind != "module.installed" {
		r.alive("waiting for the release to install")
		t.Fatalf("the sensor release was neither installed nor refused: %s %q", e.Kind, clip(e.Message, 300))
	}
	// Installed: then it must be confined, and the relay must not fight.
	r.flip(false, convergeWait, "during")
	start := r.obs.mark()
	r.window(floodWindow)
	relayTasks := r.obs.count(start, func(e event) bool { return e.Module == "relay" && e.Kind == "task.started" })
	t.Logf("%d relay tasks started in %v with the relay target holding still", relayTasks, floodWindow)
	if relayTasks >= 5 {
		t.Errorf("the relay module fought evil's sensor: %d relay tasks started in %v while its target held still", relayTasks, floodWindow)
	}
	r.expectEvent(mark, convergeWait, nil, "/relays")
}

// Refusal flood: 200 new ungranted line names per sensor call.
func refusalFlood(t *testing.T, r *rig) {
	mark := r.obs.mark()
	r.release(released("refusal-flood.wat")(t), 2)
	r.installed(mark, "2.0.0")
	first, ok := r.expectEvent(mark, eventWait, nil, "grant")
	if !ok {
		return
	}
	from := r.obs.indexOf(first)
	r.flip(true, convergeWait, "during the flood")
	r.window(floodWindow)
	n := r.obs.count(from, func(e event) bool { return e.about("evil") })
	t.Logf("%d events about evil since its first refusal (in about %v)", n, floodWindow)
	if n >= 20 {
		t.Errorf("%d events about evil since its first refusal, in about %v of a sensor asking for 200 new ungranted lines per call: the refusals are not bounded (want fewer than 20)", n, floodWindow)
	}
}

// Manifest bomb: a 600 KB version field.
func manifestBombClass(t *testing.T, r *rig) {
	wasm := manifestBomb(t)
	t.Logf("manifest bomb: %s", describe(wasm))
	mark := r.obs.mark()
	r.release(wasm, 2)
	r.flip(true, convergeWait, "during")
	r.expectRefused(mark, "manifest")
	if e, ok := r.firstEvent(mark, 0, func(e event) bool { return e.Module == "evil" && e.Kind == "module.refused" }); ok && len(e.Message) > 8<<10 {
		t.Errorf("the refusal is not clear: its message is %d bytes", len(e.Message))
	}
	r.obs.mu.Lock()
	maxState, maxEvent, bad := r.obs.maxState, r.obs.maxEvent, append([]string(nil), r.obs.badReport...)
	r.obs.mu.Unlock()
	t.Logf("largest state report %d bytes, largest event %d bytes", maxState, maxEvent)
	if maxState > 64<<10 || maxEvent > 64<<10 {
		t.Errorf("the manifest's 600 KB reached the device's reports: largest state report %d bytes, largest event %d bytes", maxState, maxEvent)
	}
	if len(bad) > 0 {
		t.Errorf("reports a consumer cannot read: %v", bad)
	}
}

// Slow sensor: every call sleeps up to its deadline.
func slowSensor(t *testing.T, r *rig) {
	mark := r.obs.mark()
	r.release(released("slow-sensor.wat")(t), 2)
	r.installed(mark, "2.0.0")
	r.flip(true, slowSensorBound, "beside the slow sensor")
	r.expectEvent(mark, eventWait, nil, "deadline")
	r.flip(false, slowSensorBound, "beside the slow sensor")
}

// GPIO write flood on a granted line.
func gpioFlood(t *testing.T, r *rig) {
	mark := r.obs.mark()
	r.release(released("gpio-flood.wat")(t), 2)
	r.installed(mark, "2.0.0")
	r.flip(true, convergeWait, "during the flood")
	if _, ok := r.expectEvent(mark, eventWait, nil, "rate"); !ok {
		return
	}
	r.window(floodWindow)
	n := r.obs.count(mark, func(e event) bool { return e.about("evil") && containsAll(e.Message, []string{"rate"}) })
	t.Logf("%d events about evil's write rate", n)
	if n > 2 {
		t.Errorf("%d events about evil's write rate: want one (at most 2)", n)
	}
}

// Randomness: two instances must read different bytes from random_get.
func randomness(t *testing.T, r *rig) {
	mark := r.obs.mark()
	r.release(released("randomness.wat")(t), 2)
	r.installed(mark, "2.0.0")
	if !r.obs.wait(eventWait, r.proc, func(o *observer) bool { return len(o.sensed["evil_random"]) >= 3 }) {
		r.alive("waiting for reports from instances")
		r.obs.mu.Lock()
		seen := r.obs.sensed["evil_random"]
		r.obs.mu.Unlock()
		t.Fatalf("fewer than 3 instances reported random bytes within %v: %v; events:\n%s", eventWait, seen, r.obs.summary(mark, 15))
	}
	r.obs.mu.Lock()
	seen := append([]string(nil), r.obs.sensed["evil_random"]...)
	r.obs.mu.Unlock()
	bytesOf := map[string]bool{}
	for _, v := range seen {
		random, _, _ := strings.Cut(strings.Trim(v, `"`), "@")
		bytesOf[random] = true
	}
	t.Logf("reports of %d instances, %d distinct random values: %v", len(seen), len(bytesOf), seen)
	if len(bytesOf) < len(seen) {
		t.Errorf("instances read the same bytes from WASI random_get (%d instances, %d distinct values: %v): the random source is deterministic", len(seen), len(bytesOf), seen)
	}
}

// A release with version 2^64-1, above the 2^53-1 a JSON number carries
// exactly: refused, and a normal release after it still installs.
func releaseVersionMax(t *testing.T, r *rig) {
	mark := r.obs.mark()
	r.release(harmless(t, "2.0.0"), 1<<64-1)
	e, ok := r.outcome(mark, eventWait)
	switch {
	case !ok:
		r.alive("waiting for the release's outcome")
		t.Errorf("no outcome for release version 2^64-1 within %v; events since:\n%s", eventWait, r.obs.summary(mark, 20))
	case e.Kind != "module.refused":
		t.Errorf("release version 18446744073709551615 (2^64-1) was not refused: %s %q", e.Kind, clip(e.Message, 300))
	case !containsAll(e.Message, []string{"9007199254740991"}) && !containsAll(e.Message, []string{"2^53"}):
		t.Errorf("release version 2^64-1 was refused, but the event does not name the bound 2^53-1 (9007199254740991): %q", clip(e.Message, 300))
	default:
		t.Logf("refused as expected: %q", clip(e.Message, 300))
	}
	mark = r.obs.mark()
	r.release(harmless(t, "3.0.0"), 3)
	e, ok = r.outcome(mark, eventWait)
	if !ok || e.Kind != "module.installed" || !containsAll(e.Message, []string{"3.0.0"}) {
		t.Errorf("after the release version 2^64-1, a normal release (version 3) does not install: %s %q", e.Kind, clip(e.Message, 300))
	}
}

// The same release version with other code: refused with an event, and
// the code accepted first keeps running.
func releaseSameVersion(t *testing.T, r *rig) {
	mark := r.obs.mark()
	r.release(harmless(t, "2.0.0"), 77)
	r.installed(mark, "2.0.0")
	mark = r.obs.mark()
	r.release(harmless(t, "2.0.1"), 77)
	e, ok := r.outcome(mark, convergeWait)
	switch {
	case !ok:
		r.alive("waiting for the release's outcome")
		t.Errorf("release version 77 again with other code (2.0.1): no event within %v; it was ignored quietly", convergeWait)
	case e.Kind != "module.refused":
		t.Errorf("release version 77 again with other code (2.0.1) was not refused: %s %q", e.Kind, clip(e.Message, 300))
	case !containsAll(e.Message, []string{"77"}):
		t.Errorf("release version 77 again with other code was refused, but the event does not name the version: %q", clip(e.Message, 300))
	default:
		t.Logf("refused as expected: %q", clip(e.Message, 300))
	}
	r.waitState("evil 2.0.0 still running", convergeWait, func(s state) bool { return s.Modules["evil"] == "2.0.0" })
}

// A release signed for another fleet, replayed on this fleet's topic:
// refused. It is made the operator's way, tern release --dry-run for the
// other fleet, and published as mosquitto_pub would.
func releaseOtherFleet(t *testing.T, r *rig) {
	path := filepath.Join(r.dir, "other.wasm")
	if err := os.WriteFile(path, harmless(t, "2.0.0"), 0o644); err != nil {
		t.Fatal(err)
	}
	payload, err := ternRelease(r.b, "h-other-fleet", path, "--version", "5", "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	mark := r.obs.mark()
	r.publishRaw(r.topics.Module("evil"), []byte(strings.TrimSpace(payload)))
	e, ok := r.outcome(mark, eventWait)
	switch {
	case !ok:
		r.alive("waiting for the release's outcome")
		t.Errorf("no outcome for a release signed for fleet h-other-fleet within %v; events since:\n%s", eventWait, r.obs.summary(mark, 20))
	case e.Kind != "module.refused":
		t.Errorf("a release signed for fleet h-other-fleet, replayed on fleet %s, was not refused: %s %q", r.topics.Fleet, e.Kind, clip(e.Message, 300))
	case !containsAll(e.Message, []string{"fleet"}):
		t.Errorf("the release for another fleet was refused, but the event does not name the fleet: %q", clip(e.Message, 300))
	default:
		t.Logf("refused as expected: %q", clip(e.Message, 300))
	}
	r.waitState("evil 1.0.0 still running", convergeWait, func(s state) bool { return s.Modules["evil"] == "1.0.0" })
}
