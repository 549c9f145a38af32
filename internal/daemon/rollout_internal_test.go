package daemon

import (
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/firmware/update"
	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/runtime/api"
	"github.com/tern-iot/tern/runtime/store"
	"github.com/tern-iot/tern/runtime/store/backend"
	"github.com/tern-iot/tern/runtime/window"
)

// gateRig is a gate with a clock, a connection and busy sensors the test
// moves, and changes that record when they were applied.
type gateRig struct {
	t       *testing.T
	g       *gate
	now     time.Time
	conn    uint64
	up      bool
	busy    string
	synced  bool
	priv    ed25519.PrivateKey
	applied map[string]int
	last    map[string]api.RolloutStatus
	st      store.Store
	version uint64
}

func newGateRig(t *testing.T, device string, windows []window.Window) *gateRig {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	st, err := backend.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r := &gateRig{t: t, now: time.Date(2026, 12, 5, 22, 0, 0, 0, time.UTC), conn: 1, up: true, synced: true, priv: priv, applied: map[string]int{}, st: st}
	r.g = r.open(device, pub, windows)
	return r
}

func (r *gateRig) open(device string, pub ed25519.PublicKey, windows []window.Window) *gate {
	r.t.Helper()
	trust := signing.NewTrust(pub)
	g, err := newGate(gate{
		device: device, trust: trust, store: r.st, log: slog.New(slog.DiscardHandler),
		clock: func() time.Time { return r.now }, synced: func() bool { return r.synced },
		conn: func() (uint64, bool) { return r.conn, r.up }, busy: func() string { return r.busy },
		report: func(m map[string]api.RolloutStatus) { r.last = m }, windows: windows, defMax: time.Hour,
	})
	if err != nil {
		r.t.Fatal(err)
	}
	return g
}

// control delivers a signed control on the current connection.
func (r *gateRig) control(id string, state fleet.RolloutState, reason string) {
	r.version++
	c := fleet.RolloutControl{Format: fleet.Format, Rollout: id, Version: r.version, State: state, Reason: reason}
	c.SetTopics(fleet.Topics{Fleet: "rel"})
	c.Sign(r.priv)
	r.g.control(fleet.ReceivedControl{RolloutControl: c, Conn: r.conn})
}

// hold gives the gate a change under ro that applies successfully.
func (r *gateRig) hold(key string, ro fleet.Rollout) {
	r.g.hold(&gated{key: key, rollout: ro, what: key,
		apply: func() error { r.applied[key]++; return nil },
		check: func() (api.RolloutPhase, string, bool) { return api.RolloutSucceeded, "done", true }})
}

// phase steps the gate and returns the rollout's phase and why.
func (r *gateRig) phase(id string) (api.RolloutPhase, string) {
	r.g.step()
	st := r.last[id]
	return st.Phase, st.Why
}

func (r *gateRig) want(id string, p api.RolloutPhase, why string) {
	r.t.Helper()
	got, gotWhy := r.phase(id)
	if got != p || !strings.Contains(gotWhy, why) {
		r.t.Fatalf("rollout %s: %s (%s), want %s (%s)", id, got, gotWhy, p, why)
	}
}

// deviceIn finds a device id in wave w of ro.
func deviceIn(t *testing.T, ro fleet.Rollout, w int) string {
	for i := range 10_000 {
		d := "dev-" + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676%26))
		if ro.Wave(d) == w {
			return d
		}
	}
	t.Fatalf("no device in wave %d", w)
	return ""
}

func TestGateWavesAndHalts(t *testing.T) {
	start := time.Date(2026, 12, 5, 22, 0, 0, 0, time.UTC)
	ro := fleet.Rollout{ID: "relay-5", Waves: []float64{0.1, 0.5, 1}, Start: start, Interval: fleet.Duration(time.Hour)}
	dev := deviceIn(t, ro, 1) // the second wave: opens at 23:00
	r := newGateRig(t, dev, nil)
	r.hold("module/relay", ro)
	// The change arrived; its rollout's control has not.
	r.want("relay-5", api.RolloutWaiting, "has not been heard since the device connected")
	r.control("relay-5", fleet.RolloutRunning, "started")
	r.want("relay-5", api.RolloutWaiting, "wave 2 of 3 opens at 2026-12-05T23:00:00Z")
	if next := r.g.step(); next.Sub(r.now) > clockJump {
		t.Errorf("the gate looks again at %v; a wall clock that jumps must be noticed", next)
	}
	// A pause while it waits holds it past its wave's opening.
	r.control("relay-5", fleet.RolloutPaused, "checking wave 1")
	r.now = start.Add(time.Hour + time.Minute)
	r.want("relay-5", api.RolloutHalted, "checking wave 1")
	// Off the network, the device cannot hear a halt: it waits.
	r.up = false
	r.want("relay-5", api.RolloutWaiting, "offline")
	// Back on a new connection, the control it heard on the old one is
	// not enough, even once resumed there.
	r.up, r.conn = true, 2
	r.want("relay-5", api.RolloutWaiting, "has not been heard since the device connected")
	if r.applied["module/relay"] != 0 {
		t.Fatal("applied while halted or unheard")
	}
	r.control("relay-5", fleet.RolloutRunning, "resumed")
	r.want("relay-5", api.RolloutSucceeded, "done")
	if r.applied["module/relay"] != 1 {
		t.Fatalf("applied %d times, want 1", r.applied["module/relay"])
	}
	if st := r.last["relay-5"]; st.Wave != 2 || st.What != "module/relay" {
		t.Errorf("status %+v: want wave 2 and what the change is", st)
	}
}

func TestGateAbortIsFinal(t *testing.T) {
	ro := fleet.Rollout{ID: "relay-6", Waves: []float64{1}, Start: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)}
	r := newGateRig(t, "pi-001", nil)
	r.hold("module/relay", ro)
	r.control("relay-6", fleet.RolloutAborted, "auto-abort: failed > 5% once 20 have finished")
	r.want("relay-6", api.RolloutAborted, "auto-abort")
	r.now = r.now.Add(48 * time.Hour)
	r.g.step()
	if r.applied["module/relay"] != 0 {
		t.Fatal("an aborted rollout's change was applied")
	}
	// A later running control cannot revive it, and a restart remembers
	// the abort: the same change arriving again is dropped.
	r.control("relay-6", fleet.RolloutRunning, "resumed by mistake")
	pub := r.priv.Public().(ed25519.PublicKey)
	r.g = r.open("pi-001", pub, nil)
	r.conn = 3
	r.control("relay-6", fleet.RolloutRunning, "replayed")
	r.hold("module/relay", ro)
	r.want("relay-6", api.RolloutAborted, "")
	if r.applied["module/relay"] != 0 {
		t.Fatal("applied after a restart")
	}
}

func TestGateWindowAndBusy(t *testing.T) {
	night := window.MustParse(window.Spec{From: "02:00", To: "04:00", Zone: "Europe/Berlin"})
	ro := fleet.Rollout{ID: "boiler-7", Waves: []float64{1}, Start: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC), Disruptive: true, DeferMax: fleet.Duration(30 * time.Minute)}
	r := newGateRig(t, "pi-001", []window.Window{night})
	r.hold("target/group/boilers", ro)
	r.control("boiler-7", fleet.RolloutRunning, "started")
	// 22:00 UTC is 23:00 in Berlin: outside; the gate looks again when
	// the window opens, 01:00 UTC.
	r.want("boiler-7", api.RolloutDeferred, "the next opens at 2026-12-06T01:00:00Z")
	opens := time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)
	// In the window, busy: deferred, looked at again soon.
	r.now, r.busy = opens, "/busy (button busy: [door] pressed)"
	r.want("boiler-7", api.RolloutDeferred, "busy: /busy")
	if next := r.g.step(); next.Sub(r.now) > time.Second {
		t.Errorf("a busy device looks again in %v; it must apply within a second of the sensor clearing", next.Sub(r.now))
	}
	r.now = opens.Add(10 * time.Minute)
	r.want("boiler-7", api.RolloutDeferred, "busy")
	r.busy = ""
	r.want("boiler-7", api.RolloutSucceeded, "")
	if r.applied["target/group/boilers"] != 1 {
		t.Fatal("not applied once the window was open and the device idle")
	}

	// Busy past the bound: applied anyway, and said so.
	ro.ID = "boiler-8"
	r.hold("target/group/boilers", ro)
	r.control("boiler-8", fleet.RolloutRunning, "started")
	r.busy = "/busy (button busy: [door] pressed)"
	r.want("boiler-8", api.RolloutDeferred, "at most 30m0s")
	r.now = r.now.Add(31 * time.Minute)
	r.g.step()
	if r.applied["target/group/boilers"] != 2 {
		t.Fatal("a change deferred past defer_max was not applied")
	}
	// A window that closes while busy ends the deferral's count.
	ro.ID, ro.Windows = "boiler-9", []window.Window{window.MustParse(window.Spec{Days: []string{"sun"}, From: "03:00", To: "03:30"})}
	r.hold("target/group/boilers", ro)
	r.control("boiler-9", fleet.RolloutRunning, "started")
	r.want("boiler-9", api.RolloutDeferred, "outside the maintenance windows (sun 03:00-03:30 UTC)")
}

func TestGateReplacedAndClockUnsynced(t *testing.T) {
	ro := fleet.Rollout{ID: "a", Waves: []float64{1}, Start: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)}
	r := newGateRig(t, "pi-001", nil)
	r.synced = false
	r.hold("module/relay", ro)
	r.control("a", fleet.RolloutRunning, "")
	r.want("a", api.RolloutWaiting, "clock is not synchronised")
	ro.ID = "b"
	r.hold("module/relay", ro)
	if st := r.last; st != nil {
		r.g.step()
	}
	if st := r.last["a"]; st.Phase != api.RolloutReplaced {
		t.Fatalf("rollout a: %+v, want replaced", st)
	}
}

func TestGateRefusesForgedAndOlderControls(t *testing.T) {
	ro := fleet.Rollout{ID: "r", Waves: []float64{1}, Start: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)}
	r := newGateRig(t, "pi-001", nil)
	r.hold("module/relay", ro)
	r.control("r", fleet.RolloutPaused, "hold on")
	// A stranger's running control, and an older one of the operator's.
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	forged := fleet.RolloutControl{Format: fleet.Format, Rollout: "r", Version: 99, State: fleet.RolloutRunning}
	forged.SetTopics(fleet.Topics{Fleet: "rel"})
	forged.Sign(stranger)
	r.g.control(fleet.ReceivedControl{RolloutControl: forged, Conn: r.conn})
	old := fleet.RolloutControl{Format: fleet.Format, Rollout: "r", Version: 0, State: fleet.RolloutRunning}
	old.SetTopics(fleet.Topics{Fleet: "rel"})
	old.Sign(r.priv)
	r.g.control(fleet.ReceivedControl{RolloutControl: old, Conn: r.conn})
	r.want("r", api.RolloutHalted, "hold on")
}

// An agent release under a rollout: held until its wave opens; its
// outcome is the update's (on trial: not yet; committed: succeeded;
// rolled back: failed), after the restart too.
func TestGateAgentRelease(t *testing.T) {
	ro := fleet.Rollout{ID: "ternd-2", Waves: []float64{1}, Start: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)}
	r := newGateRig(t, "pi-001", nil)
	d := update.Dir{Path: filepath.Join(t.TempDir(), "agent")}
	if err := os.MkdirAll(d.Path, 0o755); err != nil {
		t.Fatal(err)
	}
	u := &updater{dir: d, log: slog.New(slog.DiscardHandler)}
	rel := fleet.AgentRelease{Arch: "arm64", Version: 7, AgentVersion: "0.9.0", Rollout: &ro}
	applied := 0
	r.g.hold(agentGated(rel, u, func() error {
		applied++
		return d.Save(update.State{Phase: update.PhaseTrial, Version: 7, Tried: 7})
	}))
	r.want("ternd-2", api.RolloutWaiting, "has not been heard")
	r.control("ternd-2", fleet.RolloutRunning, "")
	r.want("ternd-2", api.RolloutApplying, "wave 1 opened")
	if applied != 1 {
		t.Fatalf("applied %d times", applied)
	}
	// ternd restarts into the new binary: the gate forgets the item,
	// keeps the status; the retained release comes again, tried.
	pub := r.priv.Public().(ed25519.PublicKey)
	r.g = r.open("pi-001", pub, nil)
	if !r.g.reports("ternd-2") {
		t.Fatal("after the restart the gate does not report the rollout")
	}
	r.g.hold(agentOutcome(rel, u))
	r.want("ternd-2", api.RolloutWaiting, "ternd restarted") // on trial
	if err := d.Save(update.State{Phase: update.PhaseCommitted, Version: 7, AgentVersion: "0.9.0", Tried: 7}); err != nil {
		t.Fatal(err)
	}
	r.want("ternd-2", api.RolloutSucceeded, "ternd 0.9.0 runs")
	if applied != 1 {
		t.Fatalf("applied %d times", applied)
	}
	if err := d.Save(update.State{Phase: update.PhaseRolledBack, Version: 7, Tried: 7, Reason: "not healthy within 2m"}); err != nil {
		t.Fatal(err)
	}
	if p, why, done := u.outcome(7); p != api.RolloutFailed || !done || !strings.Contains(why, "not healthy") {
		t.Errorf("a rolled back release: %s %q %v", p, why, done)
	}
}

// A change for the same target without a rollout, after one held by a
// rollout, replaces it: the held one is never applied.
func TestGateSuperseded(t *testing.T) {
	ro := fleet.Rollout{ID: "slow", Waves: []float64{1}, Start: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)}
	r := newGateRig(t, "pi-001", nil)
	r.hold("target/group/boilers", ro)
	r.control("slow", fleet.RolloutRunning, "")
	r.want("slow", api.RolloutWaiting, "opens at")
	r.g.supersede("target/group/boilers", "target group/boilers version 9")
	r.want("slow", api.RolloutReplaced, "version 9")
	r.now = r.now.Add(48 * time.Hour)
	r.g.step()
	if r.applied["target/group/boilers"] != 0 {
		t.Fatal("a superseded change was applied")
	}
}
