package testbench_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/devbroker"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/internal/daemon"
	"github.com/tern-iot/tern/internal/wasmbuild"
	"github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/runtime/store/backend"
	"github.com/tern-iot/tern/testbench"
)

var killTopics = fleet.Topics{Fleet: "kill"}

// watched is what the broker saw of one device: every event report (by
// seq, counting duplicates) and every state report, with arrival times.
type watched struct {
	mu      sync.Mutex
	seen    map[uint64]fleet.EventReport
	arrived map[uint64]time.Time
	dups    int
	events  []arrival[fleet.EventReport]
	states  []arrival[fleet.StateReport]
	bad     []string
	changed chan struct{} // closed and replaced on every report
}

type arrival[T any] struct {
	at time.Time
	r  T
}

func newWatched() *watched {
	return &watched{seen: map[uint64]fleet.EventReport{}, arrived: map[uint64]time.Time{}, changed: make(chan struct{})}
}

// on is the broker's in-process subscription callback.
func (w *watched) on(topic string, payload []byte) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case strings.HasSuffix(topic, "/events"):
		e, err := fleet.ParseEventReport(payload)
		if err != nil {
			w.bad = append(w.bad, err.Error())
			return
		}
		if _, dup := w.seen[e.Seq]; dup {
			w.dups++
		} else {
			w.seen[e.Seq], w.arrived[e.Seq] = e, now
		}
		w.events = append(w.events, arrival[fleet.EventReport]{now, e})
	case strings.HasSuffix(topic, "/state"):
		if len(payload) == 0 {
			return
		}
		s, err := fleet.ParseStateReport(payload)
		if err != nil {
			w.bad = append(w.bad, err.Error())
			return
		}
		w.states = append(w.states, arrival[fleet.StateReport]{now, s})
	default:
		return
	}
	close(w.changed)
	w.changed = make(chan struct{})
}

// await waits until cond, called under the lock, holds.
func (w *watched) await(t *testing.T, p *testbench.ProcessAgent, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		ok, ch := cond(), w.changed
		w.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out after %v waiting for %s; ternd's log ends:\n%s", timeout, what, p.Tail(30))
		}
	}
}

// killConfig is a ternd on the sim board with a room heated through GPIO17
// and measured by a TMP102, and the thermostat module: a target
// {"room":{"temp":22}} plans heater on, wait until warm, heater off, which
// takes about a second of the room's physics, in which the test kills it.
//
// The room loses heat (0.1 of its difference to 18 °C a second, as the
// testbench's rooms do), so that it can be too warm for a while but not for
// good. The thermostat stops heating once it reads 0.2 °C past the target:
// here, with 0.2 °C per 50 ms tick of the sim and a TMP102 that reads 22.2
// as 22.1875, at 22.4 °C, one tick below 22.6, which reads 23. One tick
// between the wait's last reading and the heater-off write (a task's end,
// its state and progress stored, the next task's start: often 30 ms, more
// on a busy machine) leaves the room there. An insulated room (loss 0,
// ternd's default) then stays at 23 and every retry of "heater off, wait
// until 22 °C" fails (issue 13).
func killConfig(t *testing.T, broker string) daemon.Config {
	t.Helper()
	wasm, err := wasmbuild.Cached("github.com/tern-iot/tern/plugins/thermostat")
	if err != nil {
		t.Fatal(err)
	}
	mod := filepath.Join(t.TempDir(), "thermostat.wasm")
	if err := os.WriteFile(mod, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	start, ambient := 18.0, 18.0
	c := daemon.Config{
		Device: "kill-001", Fleet: killTopics.Fleet, Broker: broker, Board: "sim", LogLevel: os.Getenv("TERN_KILL_LOGLEVEL"),
		Sim: sim.BoardSpec{
			I2C:   []sim.ChipSpec{{At: "i2c1:0x48", Chip: "tmp102", Celsius: &start}},
			Rooms: []sim.RoomSpec{{Heater: "GPIO17", Sensor: "i2c1:0x48", Heat: 4, Loss: 0.1, Ambient: &ambient}},
		},
		Modules: []daemon.ModuleConfig{{Name: "thermostat", Path: mod, Config: map[string]any{
			"sensor": map[string]any{"bus": "i2c1", "address": 0x48}, "heater": "GPIO17",
		}}},
	}
	c.Modules[0].Grants.GPIO = []string{"GPIO17"}
	c.Modules[0].Grants.I2C = []string{"i2c1:0x48"}
	return c
}

// TestKillRestart: one ternd process on a sim board, against the embedded
// broker. Each round pushes a new target version, starts ternd, waits for
// the plan to run, kills ternd with SIGKILL at a random moment of the plan
// (the retained target is cleared first, so the target can only come from
// ternd's store), restarts it and requires it to come back with that
// target version and converge; then stops it gracefully. At the end every
// event report the device ever numbered must have reached the broker:
// seq 1..N, duplicates allowed, none missing.
//
// TERN_KILLS sets the number of kills during plan execution (default 10;
// make testbench runs 50).
func TestKillRestart(t *testing.T) {
	kills := 10
	if s := os.Getenv("TERN_KILLS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("TERN_KILLS=%q: want a positive number of kills", s)
		}
		kills = n
	}
	w := newWatched()
	b := fleettest.RestartableEmbedded(t, func(b *devbroker.Broker) error {
		return b.Subscribe("tern/"+killTopics.Fleet+"/devices/+/+", w.on)
	})
	op := dialOp(t, b.URL)
	cfg := killConfig(t, b.URL)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	var (
		p          *testbench.ProcessAgent
		reconverge []time.Duration
		window     = 600 * time.Millisecond // a plan's length, measured below
		late       int                      // kills that came after the plan ended; not counted
		rounds     int
		downs      []down
	)
	for done := 0; done < kills; rounds++ {
		version := uint64(rounds + 1)
		temp := 22 + rounds%2
		pushTo(t, op, cfg.Device, version, fmt.Sprintf(`{"room":{"temp":%d}}`, temp))
		t0 := time.Now()
		if p == nil {
			var err error
			if p, err = testbench.StartProcess(ctx, testbench.ProcessOptions{Config: cfg, Dir: dir}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := p.Stop(); err != nil {
					t.Error(err)
				}
			})
		} else if err := p.Restart(ctx); err != nil {
			t.Fatal(err)
		}

		// The plan for this version runs: kill at a random moment of it,
		// then clear the retained target.
		var started time.Time
		w.await(t, p, fmt.Sprintf("round %d: task.started for v%d", rounds, version), time.Minute, func() bool {
			for _, e := range w.events {
				if e.r.Kind == runtime.EventTaskStarted && e.r.TargetVersion == version && !e.r.Time.Before(t0) {
					started = e.r.Time
					return true
				}
			}
			return false
		})
		seenAt := time.Now()
		delay := time.Duration(rand.Int64N(int64(window)))
		time.Sleep(time.Until(started.Add(delay)))
		killAt := time.Now()
		if err := p.Kill(); err != nil {
			t.Fatal(err)
		}
		clearRetained(t, b.URL, killTopics.DeviceTarget(cfg.Device))

		// Back on the same store: the target is there, without the broker's help.
		r0 := time.Now()
		downs = append(downs, down{killAt, r0})
		if err := p.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		var first *fleet.StateReport
		w.await(t, p, fmt.Sprintf("round %d: converged on v%d after the kill", rounds, version), time.Minute, func() bool {
			for _, s := range w.states {
				if s.at.Before(r0) || s.r.Time.Before(r0) {
					continue
				}
				if first == nil {
					first = &s.r
				}
				if s.r.Converged && s.r.TargetVersion == version {
					reconverge = append(reconverge, s.at.Sub(r0))
					return true
				}
			}
			return false
		})
		if first.TargetVersion != version {
			t.Fatalf("round %d: after the kill ternd first reported target_version %d, want %d from its store", rounds, first.TargetVersion, version)
		}

		// Was the kill during the plan? The killed process's events (its
		// outbox went out after the restart) say whether it had converged.
		w.mu.Lock()
		during, planStart, planEnd := true, time.Time{}, time.Time{}
		for _, e := range w.events {
			switch {
			case e.r.TargetVersion != version || e.r.Time.Before(t0):
			case e.r.Kind == runtime.EventConverged && e.r.Time.Before(killAt):
				during = false
			case e.r.Kind == runtime.EventTaskStarted && planStart.IsZero() && e.r.Time.After(r0):
				planStart = e.r.Time
			case e.r.Kind == runtime.EventConverged && planEnd.IsZero() && e.r.Time.After(r0):
				planEnd = e.r.Time
			}
		}
		w.mu.Unlock()
		after := "no task ran after the restart (the killed plan had done the work)"
		if !planStart.IsZero() && !planEnd.IsZero() {
			after = fmt.Sprintf("the plan after the restart took %v", planEnd.Sub(planStart).Round(time.Millisecond))
		}
		t.Logf("round %d: kill %v after the first task started (seen after %v, window %v), during the plan: %t; %s",
			rounds, killAt.Sub(started).Round(time.Millisecond), seenAt.Sub(started).Round(time.Millisecond), window, during, after)
		if during {
			done++
		} else {
			late++
		}
		// The restarted plan ran from a cold room: its length sizes the
		// window the next kills fall in.
		if !planStart.IsZero() && !planEnd.IsZero() {
			if d := planEnd.Sub(planStart); d > 0 && d < 10*time.Second {
				window = max(100*time.Millisecond, min(window, d*8/10))
			}
		}
		if err := p.Stop(); err != nil {
			t.Fatal(err)
		}
	}

	if os.Getenv("TERN_KILL_LOG") != "" {
		t.Log(p.Log())
	}
	// Every event numbered must have arrived: 1..N, N being what the
	// device's outbox last numbered (read from its store).
	n := outboxHigh(t, filepath.Join(p.DataDir(), "store"))
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.bad) > 0 {
		t.Errorf("%d unparseable reports, first: %s", len(w.bad), w.bad[0])
	}
	var missing []uint64
	for s := uint64(1); s <= n; s++ {
		if _, ok := w.seen[s]; !ok {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d of %d events lost, seq %v", len(missing), n, missing[:min(len(missing), 20)])
	}
	if uint64(len(w.seen)) != n {
		t.Errorf("saw %d distinct seqs, the device numbered %d", len(w.seen), n)
	}
	// The consumer's view: keeping the highest seq, events arrive in order.
	var order []uint64
	for _, e := range w.events {
		order = append(order, e.r.Seq)
	}
	high, regress := uint64(0), 0
	for _, s := range order {
		if s <= high {
			regress++ // a duplicate, dropped by the consumer
			continue
		}
		if s != high+1 {
			t.Errorf("seq %d arrived after %d: %d..%d overtaken", s, high, high+1, s-1)
		}
		high = s
	}
	carried := 0 // numbered before a kill, delivered only after the restart
	for seq, e := range w.seen {
		i, _ := slices.BinarySearchFunc(downs, e.Time, func(d down, at time.Time) int { return d.killed.Compare(at) })
		if i < len(downs) && !w.arrived[seq].Before(downs[i].restarted) {
			carried++
		}
	}
	slices.Sort(reconverge)
	t.Logf("kills during plan execution: %d (plus %d after the plan had ended, not counted); restarts: %d; graceful stops: %d",
		kills, late, 2*rounds-1, rounds)
	t.Logf("time from restart to converged: p50 %v, p99 %v, max %v (n=%d)",
		pct(reconverge, 50), pct(reconverge, 99), reconverge[len(reconverge)-1], len(reconverge))
	t.Logf("events: N=%d, distinct seen %d, lost %d, duplicates %d, delivered only after a restart %d",
		n, len(w.seen), len(missing), w.dups, carried)
}

// TestKillRoomOvershot: TestKillRestart's room and thermostat, the room
// where a heater switched off one tick late leaves it (22.6 °C, which reads
// 23) and a target of 22: ternd converges, the room cooling with the heater
// off. With an insulated room it retried for good (issue 13:
// TestKillRestart round 8 on a busy machine, "the room is not at 22 °C
// yet", the backoff at 16 s).
func TestKillRoomOvershot(t *testing.T) {
	w := newWatched()
	b := fleettest.RestartableEmbedded(t, func(b *devbroker.Broker) error {
		return b.Subscribe("tern/"+killTopics.Fleet+"/devices/+/+", w.on)
	})
	op := dialOp(t, b.URL)
	cfg := killConfig(t, b.URL)
	overshot := 22.6
	cfg.Sim.I2C[0].Celsius = &overshot
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pushTo(t, op, cfg.Device, 1, `{"room":{"temp":22}}`)
	p, err := testbench.StartProcess(ctx, testbench.ProcessOptions{Config: cfg, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Error(err)
		}
	})
	w.await(t, p, "converged on v1 from an overshot room", time.Minute, func() bool {
		for _, s := range w.states {
			if s.r.Converged && s.r.TargetVersion == 1 {
				return true
			}
		}
		return false
	})
}

// down is a kill: when ternd was killed and when it was started again.
type down struct{ killed, restarted time.Time }

func pct(ds []time.Duration, p int) time.Duration {
	return ds[min(len(ds)-1, len(ds)*p/100)].Round(time.Millisecond)
}

// outboxHigh is the highest seq the device's outbox numbered: the larger
// of its acknowledged mark and the highest report it still holds (the
// layout is fleet/outbox.go's).
func outboxHigh(t *testing.T, dir string) uint64 {
	t.Helper()
	st, err := backend.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var high uint64
	if b, err := st.Get([]byte("fleet/outbox/acked")); err == nil {
		if high, err = strconv.ParseUint(string(b), 10, 64); err != nil {
			t.Fatal(err)
		}
	} else {
		t.Fatalf("no acknowledged mark in the store: %v", err)
	}
	prefix := []byte("fleet/outbox/event/")
	err = st.Scan(prefix, func(k, _ []byte) error {
		if len(k) == len(prefix)+8 {
			high = max(high, binary.BigEndian.Uint64(k[len(prefix):]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return high
}

func dialOp(t *testing.T, url string) *fleet.Operator {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	op, err := fleet.DialOperator(ctx, fleet.OperatorOptions{Broker: url, Topics: killTopics})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(op.Close)
	return op
}

func pushTo(t *testing.T, op *fleet.Operator, device string, version uint64, target string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := op.PushTarget(ctx, device, fleet.TargetEnvelope{Format: fleet.Format, Version: version, Target: []byte(target)}); err != nil {
		t.Fatal(err)
	}
}

// clearRetained removes the retained message on topic (an empty retained
// publish), as `mosquitto_pub -r -n` does.
func clearRetained(t *testing.T, url, topic string) {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("clear-%d", rand.Int())).SetCleanSession(true))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect to clear the retained target: %v", tok.Error())
	}
	defer c.Disconnect(0)
	if tok := c.Publish(topic, 1, true, []byte{}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("clear the retained target: %v", tok.Error())
	}
}
