package testbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/daemon"
	"github.com/tern-iot/tern/internal/wasmbuild"
)

// Options configure Run.
type Options struct {
	// Progress receives what happens as it happens; nil: nothing.
	Progress io.Writer
	// Live redraws a status line on Progress (a terminal) between the
	// lines; otherwise progress is plain lines.
	Live bool
	// AgentLog receives every agent's log (ternd's, level info); nil:
	// only warnings are kept, for the report.
	AgentLog io.Writer
	// Ternd is the ternd executable process agents (process: true) run.
	// Empty: TerndBinary builds it, which needs the tern source tree.
	Ternd string
	// Tern is the tern executable whose `tern broker` a cluster's nodes
	// run (broker: cluster). Empty: TernBinary builds it.
	Tern string
	// Seed, if not 0, replaces every scenario's seed: the one a report
	// printed replays that run's random choices (kill moments and victims,
	// noise, garbage).
	Seed uint64
}

// Result is the outcome of one scenario.
type Result struct {
	Name       string            `json:"name"`
	File       string            `json:"file,omitempty"`
	Passed     bool              `json:"passed"`
	Error      string            `json:"error,omitempty"` // the scenario could not run
	Started    time.Time         `json:"started"`
	Seed       uint64            `json:"seed"`     // what the random choices were drawn from
	Setup      time.Duration     `json:"setup_ns"` // build, boot, first reports
	Duration   time.Duration     `json:"duration_ns"`
	Assertions []AssertionResult `json:"assertions"`
	Timeline   []Entry           `json:"timeline"`
	Devices    []DeviceResult    `json:"devices"`
}

// AssertionResult is one assertion's verdict. Steps of the timeline that
// could not be carried out are reported as failed assertions too.
type AssertionResult struct {
	Name   string        `json:"name"`
	Line   int           `json:"line,omitempty"`
	Passed bool          `json:"passed"`
	Reason string        `json:"reason"`
	At     time.Duration `json:"at_ns"`   // when checking began, from the start
	Took   time.Duration `json:"took_ns"` // until it held, or failed
}

// Entry is one line of the timeline: a step, a fault ending, or a notable
// event a device reported.
type Entry struct {
	At     time.Duration `json:"at_ns"`
	Device string        `json:"device,omitempty"`
	What   string        `json:"what"`
	Detail string        `json:"detail,omitempty"`
}

// DeviceResult is how a device ended.
type DeviceResult struct {
	ID            string            `json:"id"`
	TargetVersion uint64            `json:"target_version"`
	Converged     bool              `json:"converged"`
	Phase         string            `json:"phase,omitempty"`
	Error         string            `json:"error,omitempty"`
	Modules       map[string]string `json:"modules,omitempty"`
	Events        int               `json:"events"`
	LastSeq       uint64            `json:"last_seq"`
	Log           []string          `json:"log,omitempty"` // its last warnings, when something failed
}

// Failed counts the failed assertions.
func (r *Result) Failed() int {
	n := 0
	for _, a := range r.Assertions {
		if !a.Passed {
			n++
		}
	}
	return n
}

// run is one scenario being run: it sets up the broker and the agents,
// hands them to a player (timeline.go) and a judge (assert.go), and tears
// them down. What happened is told by its narrator (narrate.go).
type run struct {
	sc   *Scenario
	opts Options
	dir  string
	seed uint64
	// rng draws the boards' noise, then the noise faults': one stream, so
	// that the seed replays both.
	rng *rand.Rand

	broker broker
	obs    *observer
	op     *fleet.Operator
	agents roster
	log    *narrator
}

// roster is the agents under test, in the scenario's order.
type roster struct {
	agents []Agent
	byID   map[string]Agent
	groups map[string][]string // device → its groups
	logs   map[string]*ring    // device → its last warnings
}

// Run runs a scenario and returns its result; it never panics on a bad
// scenario: what went wrong is in Result.Error.
func Run(ctx context.Context, sc *Scenario, opts Options) *Result {
	seed := sc.Seed
	if opts.Seed != 0 {
		seed = opts.Seed
	}
	res := &Result{Name: sc.Name, File: sc.File, Started: time.Now(), Seed: seed}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(sc.Timeout))
	defer cancel()
	dir, err := os.MkdirTemp("", "tern-testbench-")
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer os.RemoveAll(dir)
	r := &run{
		sc: sc, opts: opts, dir: dir, seed: seed, rng: rand.New(rand.NewPCG(seed, seed^0x7465726e)),
		agents: roster{byID: map[string]Agent{}, groups: map[string][]string{}, logs: map[string]*ring{}},
		log:    &narrator{out: opts.Progress, redraw: opts.Live, name: sc.Name},
	}
	defer r.teardown()
	r.log.printf("=== %s: setting up %d agents on the %s broker (seed %d)", sc.Name, sc.count(), sc.Broker, seed)
	if err := r.setup(ctx); err != nil {
		res.Error = err.Error()
		res.Duration = time.Since(res.Started)
		r.fill(res)
		return res
	}
	res.Setup = time.Since(res.Started)
	r.log.printf("    ready in %v; running the timeline", res.Setup.Round(10*time.Millisecond))
	r.player().play(ctx)
	res.Duration = time.Since(res.Started)
	r.fill(res)
	res.Passed = res.Error == "" && res.Failed() == 0
	if ctx.Err() != nil && res.Error == "" {
		res.Error = fmt.Sprintf("the scenario ran out of its timeout (%v); raise timeout: or shorten the timeline", sc.Timeout)
		res.Passed = false
	}
	return res
}

// count is how many agents the scenario runs.
func (sc *Scenario) count() int {
	n := 0
	for _, a := range sc.Agents {
		n += a.Count
	}
	return n
}

// path resolves a path of the scenario file, relative to it.
func (sc *Scenario) path(p string) string {
	if filepath.IsAbs(p) || sc.File == "" {
		return p
	}
	return filepath.Join(filepath.Dir(sc.File), p)
}

// code builds or reads a module's code.
func (sc *Scenario) code(src ModuleSource) ([]byte, error) {
	switch {
	case src.Plugin != "":
		b, err := wasmbuild.Cached("github.com/tern-iot/tern/plugins/" + src.Plugin)
		if err != nil {
			return nil, fmt.Errorf("plugin %s: %w (run the testbench from inside the tern module)", src.Plugin, err)
		}
		return b, nil
	case src.Build != "":
		dir, err := filepath.Abs(sc.path(src.Build))
		if err != nil {
			return nil, err
		}
		return wasmbuild.Cached(dir)
	default:
		return os.ReadFile(sc.path(src.Wasm))
	}
}

func (r *run) setup(ctx context.Context) error {
	names := make([]string, 0, len(r.sc.Modules))
	for name := range r.sc.Modules {
		names = append(names, name)
	}
	slices.Sort(names)
	modDir := filepath.Join(r.dir, "modules")
	if err := os.MkdirAll(modDir, 0o755); err != nil {
		return err
	}
	for _, name := range names {
		b, err := r.sc.code(r.sc.Modules[name].ModuleSource)
		if err != nil {
			return fmt.Errorf("module %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(modDir, name+".wasm"), b, 0o644); err != nil {
			return err
		}
	}
	// Releases are built now, so building does not eat into the timeline.
	for _, st := range r.sc.Timeline {
		if st.Release != nil {
			if _, err := r.sc.code(st.Release.ModuleSource); err != nil {
				return fmt.Errorf("line %d: release of %s: %w", st.line, st.Release.Module, err)
			}
		}
	}

	r.log.start = time.Now() // provisional; reset when every agent reported
	topics := fleet.Topics{Fleet: r.sc.Fleet}
	r.obs = newObserver(r.log.start, topics)
	var err error
	switch r.sc.Broker {
	case "mosquitto":
		r.broker, err = newMosquitto(r.dir, r.obs.filters(), r.obs.feed)
	case "cluster":
		r.broker, err = newClusterBroker(ctx, r.dir, r.opts.Tern, r.obs.filters(), r.obs.feed)
	default:
		r.broker, err = newEmbedded(r.obs.filters(), r.obs.feed)
	}
	if err != nil {
		return err
	}
	if r.op, err = dialOperator(ctx, r.broker.URL(), r.sc.Fleet); err != nil {
		return err
	}

	ternd := r.opts.Ternd
	for _, spec := range r.sc.Agents {
		if spec.Process && ternd == "" {
			var err error
			if ternd, err = TerndBinary(ctx); err != nil {
				return err
			}
		}
		for _, id := range spec.IDs() {
			cfg := daemon.Config{
				Device: id, Fleet: r.sc.Fleet, Broker: r.broker.URL(), Brokers: r.broker.Brokers(len(r.agents.agents)), Board: "sim", LogLevel: "info",
				DataDir: filepath.Join(r.dir, "agents", id), Groups: spec.Groups,
				// One compilation for all agents, in process or not: the
				// others wait for it, then load the code cached. (Five
				// in-process agents each compiling the thermostat module
				// under the race detector on a busy machine did not boot
				// within two minutes.)
				CacheDir: filepath.Join(r.dir, "cache"),
				// Jobs with a time wait for a synchronised clock: an
				// in-process agent's is its board's (clock_unsynced), a
				// process agent's the host's, taken as right.
				ClockSync:    "assume",
				UpdatePolicy: spec.UpdatePolicy,
			}
			if cfg.Brokers != nil {
				cfg.Broker = ""
			}
			for _, m := range spec.Modules {
				ms := r.sc.Modules[m]
				mc := daemon.ModuleConfig{Name: m, Path: filepath.Join(modDir, m+".wasm"), Config: ms.Config}
				mc.Grants.GPIO, mc.Grants.I2C, mc.Grants.Serial = ms.Grants.GPIO, ms.Grants.I2C, ms.Grants.Serial
				cfg.Modules = append(cfg.Modules, mc)
			}
			lg := &ring{max: 20}
			r.agents.logs[id] = lg
			var a Agent
			if spec.Process {
				cfg.Sim = spec.Board
				p, err := NewProcess(ctx, ProcessOptions{
					Config: cfg, Dir: filepath.Join(r.dir, "agents", id), Binary: ternd,
					Log: &processLog{id: id, warn: lg, all: r.opts.AgentLog},
				})
				if err != nil {
					return err
				}
				a = p
			} else {
				board, err := newBoard(spec, r.rng)
				if err != nil {
					return fmt.Errorf("agent %s: board: %w", id, err)
				}
				a = NewInProcess(cfg, board, slog.New(agentHandler(lg, r.opts.AgentLog, id)))
			}
			r.agents.agents = append(r.agents.agents, a)
			r.agents.byID[id] = a
			r.agents.groups[id] = spec.Groups
		}
	}
	// Processes start in parallel: each waits until its ternd has started.
	errs := make([]error, len(r.agents.agents))
	var starting sync.WaitGroup
	for i, a := range r.agents.agents {
		starting.Go(func() { errs[i] = a.Start(ctx) })
	}
	starting.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	go r.agents.physics(ctx)

	// Time starts when every agent has reported: booting (compiling the
	// modules) is not what the scenario measures. The bound is one on a
	// hang: compiling a Go module takes a minute and more under the race
	// detector on a busy machine.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var missing []string
		for _, a := range r.agents.agents {
			if s := r.obs.snapshot(a.ID()); !s.hasState {
				missing = append(missing, a.ID())
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("agents %s never reported their state; their last warnings: %s", list(missing, 5), strings.Join(r.agents.logs[missing[0]].lines(), " | "))
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.log.start = time.Now()
	r.obs.mu.Lock()
	r.obs.start = r.log.start
	r.obs.mu.Unlock()
	return nil
}

// physics moves the simulated boards' worlds (their rooms) on.
func (rs *roster) physics(ctx context.Context) {
	const dt = 20 * time.Millisecond
	t := time.NewTicker(dt)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, a := range rs.agents {
			if b, ok := a.(Boarded); ok {
				b.Board().Step(dt)
			}
		}
	}
}

func (r *run) teardown() {
	var wg sync.WaitGroup
	for _, a := range r.agents.agents {
		wg.Go(func() { a.Stop() })
	}
	wg.Wait()
	for _, a := range r.agents.agents {
		if b, ok := a.(Boarded); ok {
			b.Board().Close()
		}
	}
	if r.op != nil {
		r.op.Close()
	}
	if r.broker != nil {
		r.broker.Close()
	}
}

// selected lists the agents a selector picks, in id order.
func (rs *roster) selected(s Selector) []string {
	var ids []string
	for _, a := range rs.agents {
		id := a.ID()
		if s.All || s.Device == id || (s.Group != "" && slices.Contains(rs.groups[id], s.Group)) {
			ids = append(ids, id)
		}
	}
	return ids
}

// boards are the simulated boards of the agents a selector picks; what
// needs them is refused for an agent whose board is out of reach.
func (rs *roster) boards(s Selector, what string) ([]*Board, error) {
	var out []*Board
	for _, id := range rs.selected(s) {
		b, ok := rs.byID[id].(Boarded)
		if !ok {
			return nil, fmt.Errorf("%s needs the agent's simulated board, which the testbench reaches in in-process agents only (%s is not one)", what, id)
		}
		out = append(out, b.Board())
	}
	return out, nil
}

// fill completes a result from what the run saw.
func (r *run) fill(res *Result) {
	res.Assertions, res.Timeline = r.log.story()
	if r.obs != nil {
		res.Timeline = append(res.Timeline, r.obs.entries()...)
	}
	sort.SliceStable(res.Timeline, func(i, j int) bool { return res.Timeline[i].At < res.Timeline[j].At })
	failed := res.Failed() > 0 || res.Error != ""
	for _, a := range r.agents.agents {
		d := DeviceResult{ID: a.ID()}
		if r.obs != nil {
			s := r.obs.snapshot(a.ID())
			d.TargetVersion, d.Converged, d.Phase, d.Error, d.Modules = s.state.TargetVersion, s.state.Converged, string(s.state.Phase), s.state.Error, s.state.Modules
			d.Events, d.LastSeq = len(s.events), s.maxSeq
		}
		if failed {
			d.Log = r.agents.logs[a.ID()].lines()
		}
		res.Devices = append(res.Devices, d)
	}
}

// player makes the player of the timeline and its judge from what setup
// made.
func (r *run) player() *player {
	pushed := &pushed{versions: map[string]uint64{}, releases: map[string]uint64{}, groups: r.agents.groups}
	rs := &rollouts{}
	p := &player{
		sc: r.sc, seed: r.seed, rng: r.rng, broker: r.broker, op: r.op, obs: r.obs, agents: &r.agents, pushed: pushed, log: r.log,
		judge: &judge{obs: r.obs, agents: &r.agents, pushed: pushed, log: r.log, rollouts: rs},
		power: map[string]*sync.Mutex{}, jobs: map[string]fleet.ScopedJob{}, rollouts: rs,
	}
	p.judge.op = r.op
	for _, a := range r.agents.agents {
		p.power[a.ID()] = new(sync.Mutex)
	}
	return p
}
