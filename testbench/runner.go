package testbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/hal/sim"
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

// run is one scenario being run.
type run struct {
	sc    *Scenario
	opts  Options
	dir   string
	seed  uint64
	rng   *rand.Rand
	start time.Time

	broker broker
	obs    *observer
	op     *fleet.Operator
	agents []Agent
	byID   map[string]Agent
	groups map[string][]string // device → its groups
	logs   map[string]*ring
	wasm   map[string][]byte      // module name → code the agents start with
	power  map[string]*sync.Mutex // agent → held while it is killed or restarted
	kills  sync.WaitGroup         // kill steps under way

	mu       sync.Mutex
	versions map[string]uint64 // "device/ID" or "group/G" → latest version pushed
	releases map[string]uint64 // module → latest release version
	timeline []Entry
	results  []AssertionResult
	progOut  sync.Mutex
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
		byID: map[string]Agent{}, groups: map[string][]string{}, logs: map[string]*ring{}, wasm: map[string][]byte{},
		power:    map[string]*sync.Mutex{},
		versions: map[string]uint64{}, releases: map[string]uint64{},
	}
	defer r.teardown()
	r.printf("=== %s: setting up %d agents on the %s broker (seed %d)", sc.Name, r.count(), sc.Broker, seed)
	if err := r.setup(ctx); err != nil {
		res.Error = err.Error()
		res.Duration = time.Since(res.Started)
		r.fill(res)
		return res
	}
	res.Setup = time.Since(res.Started)
	r.printf("    ready in %v; running the timeline", res.Setup.Round(10*time.Millisecond))
	r.play(ctx)
	res.Duration = time.Since(res.Started)
	r.fill(res)
	res.Passed = res.Error == "" && res.Failed() == 0
	if ctx.Err() != nil && res.Error == "" {
		res.Error = fmt.Sprintf("the scenario ran out of its timeout (%v); raise timeout: or shorten the timeline", sc.Timeout)
		res.Passed = false
	}
	return res
}

func (r *run) count() int {
	n := 0
	for _, a := range r.sc.Agents {
		n += a.Count
	}
	return n
}

func (r *run) path(p string) string {
	if filepath.IsAbs(p) || r.sc.File == "" {
		return p
	}
	return filepath.Join(filepath.Dir(r.sc.File), p)
}

// code builds or reads a module's code.
func (r *run) code(src ModuleSource) ([]byte, error) {
	switch {
	case src.Plugin != "":
		b, err := wasmbuild.Cached("github.com/tern-iot/tern/plugins/" + src.Plugin)
		if err != nil {
			return nil, fmt.Errorf("plugin %s: %w (run the testbench from inside the tern module)", src.Plugin, err)
		}
		return b, nil
	case src.Build != "":
		dir, err := filepath.Abs(r.path(src.Build))
		if err != nil {
			return nil, err
		}
		return wasmbuild.Cached(dir)
	default:
		return os.ReadFile(r.path(src.Wasm))
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
		b, err := r.code(r.sc.Modules[name].ModuleSource)
		if err != nil {
			return fmt.Errorf("module %s: %w", name, err)
		}
		r.wasm[name] = b
		if err := os.WriteFile(filepath.Join(modDir, name+".wasm"), b, 0o644); err != nil {
			return err
		}
	}
	// Releases are built now, so building does not eat into the timeline.
	for _, st := range r.sc.Timeline {
		if st.Release != nil {
			if _, err := r.code(st.Release.ModuleSource); err != nil {
				return fmt.Errorf("line %d: release of %s: %w", st.line, st.Release.Module, err)
			}
		}
	}

	r.start = time.Now() // provisional; reset when every agent reported
	topics := fleet.Topics{Fleet: r.sc.Fleet}
	r.obs = newObserver(r.start, topics)
	var err error
	switch r.sc.Broker {
	case "mosquitto":
		r.broker, err = newMosquitto(r.dir, r.obs.filters(), r.obs.feed)
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
				Device: id, Fleet: r.sc.Fleet, Broker: r.broker.URL(), Board: "sim", LogLevel: "info",
				DataDir: filepath.Join(r.dir, "agents", id), Groups: spec.Groups,
				// One compilation for all agents, in process or not: the
				// others wait for it, then load the code cached. (Five
				// in-process agents each compiling the thermostat module
				// under the race detector on a busy machine did not boot
				// within two minutes.)
				CacheDir: filepath.Join(r.dir, "cache"),
			}
			for _, m := range spec.Modules {
				ms := r.sc.Modules[m]
				mc := daemon.ModuleConfig{Name: m, Path: filepath.Join(modDir, m+".wasm"), Config: ms.Config}
				mc.Grants.GPIO, mc.Grants.I2C, mc.Grants.Serial = ms.Grants.GPIO, ms.Grants.I2C, ms.Grants.Serial
				cfg.Modules = append(cfg.Modules, mc)
			}
			lg := &ring{max: 20}
			r.logs[id] = lg
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
			r.agents = append(r.agents, a)
			r.byID[id] = a
			r.groups[id] = spec.Groups
			r.power[id] = new(sync.Mutex)
		}
	}
	// Processes start in parallel: each waits until its ternd has started.
	errs := make([]error, len(r.agents))
	var starting sync.WaitGroup
	for i, a := range r.agents {
		starting.Go(func() { errs[i] = a.Start(ctx) })
	}
	starting.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	go r.physics(ctx)

	// Time starts when every agent has reported: booting (compiling the
	// modules) is not what the scenario measures. The bound is one on a
	// hang: compiling a Go module takes a minute and more under the race
	// detector on a busy machine.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var missing []string
		for _, a := range r.agents {
			if s := r.obs.snapshot(a.ID()); !s.hasState {
				missing = append(missing, a.ID())
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("agents %s never reported their state; their last warnings: %s", list(missing, 5), strings.Join(r.logs[missing[0]].lines(), " | "))
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.start = time.Now()
	r.obs.mu.Lock()
	r.obs.start = r.start
	r.obs.mu.Unlock()
	return nil
}

func (r *run) physics(ctx context.Context) {
	const dt = 20 * time.Millisecond
	t := time.NewTicker(dt)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, a := range r.agents {
			if b, ok := a.(Boarded); ok {
				b.Board().Step(dt)
			}
		}
	}
}

func (r *run) teardown() {
	var wg sync.WaitGroup
	for _, a := range r.agents {
		wg.Go(func() { a.Stop() })
	}
	wg.Wait()
	for _, a := range r.agents {
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

func (r *run) since() time.Duration { return time.Since(r.start) }

// note adds a line to the timeline and shows it.
func (r *run) note(device, what, detail string) {
	e := Entry{At: r.since(), Device: device, What: what, Detail: detail}
	r.mu.Lock()
	r.timeline = append(r.timeline, e)
	r.mu.Unlock()
	r.printf("  %8s  %-14s %s", fmtAt(e.At), what, strings.TrimSpace(device+" "+detail))
}

func (r *run) printf(format string, args ...any) {
	if r.opts.Progress == nil {
		return
	}
	r.progOut.Lock()
	defer r.progOut.Unlock()
	if r.opts.Live {
		fmt.Fprint(r.opts.Progress, "\r\033[K")
	}
	fmt.Fprintf(r.opts.Progress, format+"\n", args...)
}

// status is the live line: time, convergence, assertions.
func (r *run) status() string {
	conv := 0
	for _, a := range r.agents {
		s := r.obs.snapshot(a.ID())
		if s.hasState && s.state.Converged {
			conv++
		}
	}
	r.mu.Lock()
	done := len(r.results)
	failed := 0
	for _, a := range r.results {
		if !a.Passed {
			failed++
		}
	}
	r.mu.Unlock()
	return fmt.Sprintf("  %s  %s  %d/%d agents converged now · %d checks done, %d failed", r.sc.Name, fmtAt(r.since()), conv, len(r.agents), done, failed)
}

func (r *run) live(ctx context.Context) {
	if !r.opts.Live || r.opts.Progress == nil {
		return
	}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			r.progOut.Lock()
			fmt.Fprint(r.opts.Progress, "\r\033[K")
			r.progOut.Unlock()
			return
		case <-t.C:
		}
		line := r.status()
		r.progOut.Lock()
		fmt.Fprint(r.opts.Progress, "\r\033[K"+line)
		r.progOut.Unlock()
	}
}

// play runs the timeline, then the assertions.
func (r *run) play(ctx context.Context) {
	liveCtx, stopLive := context.WithCancel(ctx)
	var liveDone sync.WaitGroup
	liveDone.Go(func() { r.live(liveCtx) })
	defer func() { stopLive(); liveDone.Wait() }()

	faultCtx, stopFaults := context.WithCancel(ctx)
	defer stopFaults()
	defer r.kills.Wait() // before the agents are stopped
	var checks, restores sync.WaitGroup
	steps := slices.Clone(r.sc.Timeline)
	sort.SliceStable(steps, func(i, j int) bool { return steps[i].At < steps[j].At })
	for _, st := range steps {
		if !sleepUntil(ctx, r.start.Add(time.Duration(st.At))) {
			return
		}
		if st.Expect != nil {
			checks.Go(func() { r.record(r.check(ctx, st.Expect)) })
			continue
		}
		if err := r.do(ctx, faultCtx, &restores, st); err != nil {
			r.record(AssertionResult{Name: "timeline step at " + st.At.String(), Line: st.line, Reason: err.Error(), At: r.since()})
			r.note("", "step failed", err.Error())
		}
	}
	// The timeline is done when the last kill is: the assertions measure
	// from after it.
	r.kills.Wait()
	// nothing_lost is checked last: once the other checks are done, the
	// events they waited for have arrived too.
	for i := range r.sc.Assertions {
		if r.sc.Assertions[i].NothingLost == nil {
			checks.Go(func() { r.record(r.check(ctx, &r.sc.Assertions[i])) })
		}
	}
	checks.Wait()
	for i := range r.sc.Assertions {
		if r.sc.Assertions[i].NothingLost != nil {
			checks.Go(func() { r.record(r.check(ctx, &r.sc.Assertions[i])) })
		}
	}
	checks.Wait()
	stopFaults()
	restores.Wait()
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

func (r *run) record(a AssertionResult) {
	r.mu.Lock()
	r.results = append(r.results, a)
	r.mu.Unlock()
	verdict := "PASS"
	if !a.Passed {
		verdict = "FAIL"
	}
	r.printf("  %8s  %s %s: %s", fmtAt(a.At+a.Took), verdict, a.Name, a.Reason)
}

// selected lists the agents a selector picks, in id order.
func (r *run) selected(s Selector) []string {
	var ids []string
	for _, a := range r.agents {
		id := a.ID()
		if s.All || s.Device == id || (s.Group != "" && slices.Contains(r.groups[id], s.Group)) {
			ids = append(ids, id)
		}
	}
	return ids
}

func (r *run) boards(s Selector, what string) ([]*Board, error) {
	var out []*Board
	for _, id := range r.selected(s) {
		b, ok := r.byID[id].(Boarded)
		if !ok {
			return nil, fmt.Errorf("%s needs the agent's simulated board, which the testbench reaches in in-process agents only (%s is not one)", what, id)
		}
		out = append(out, b.Board())
	}
	return out, nil
}

// do carries out one step. Faults with a duration are undone by a
// goroutine in restores.
func (r *run) do(ctx, faultCtx context.Context, restores *sync.WaitGroup, st Step) error {
	after := func(d Duration, what, who string, undo func()) {
		if d == 0 {
			return
		}
		restores.Go(func() {
			select {
			case <-time.After(time.Duration(d)):
				undo()
				r.note(who, what+" ends", "")
			case <-faultCtx.Done():
				undo()
			}
		})
	}
	switch {
	case st.Push != nil:
		p := st.Push
		scope, who := fleet.DeviceScope(p.Device), "device "+p.Device
		if p.Group != "" {
			scope, who = fleet.GroupScope(p.Group), "group "+p.Group
		}
		doc, err := json.Marshal(p.Target)
		if err != nil {
			return fmt.Errorf("push: target: %w", err)
		}
		r.mu.Lock()
		v := p.Version
		if v == 0 {
			v = r.versions[scope] + 1
		}
		r.versions[scope] = v
		r.mu.Unlock()
		env := fleet.TargetEnvelope{Format: fleet.Format, Version: v, Target: doc, Issued: time.Now().UTC()}
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		r.note("", "push", fmt.Sprintf("%s v%d %s", who, v, doc))
		if p.Group != "" {
			err = r.op.PushGroupTarget(pctx, p.Group, env)
		} else {
			err = r.op.PushTarget(pctx, p.Device, env)
		}
		if err != nil {
			return fmt.Errorf("push to %s: %w", who, err)
		}
	case st.Release != nil:
		rel := st.Release
		b, err := r.code(rel.ModuleSource)
		if err != nil {
			return fmt.Errorf("release %s: %w", rel.Module, err)
		}
		r.mu.Lock()
		v := rel.Version
		if v == 0 {
			v = r.releases[rel.Module] + 1
		}
		r.releases[rel.Module] = v
		r.mu.Unlock()
		src := rel.Plugin + rel.Build + rel.Wasm
		r.note("", "release", fmt.Sprintf("%s v%d from %s (%d KiB)", rel.Module, v, src, len(b)>>10))
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := r.op.PushRelease(pctx, fleet.NewRelease(rel.Module, v, b)); err != nil {
			return fmt.Errorf("release %s: %w", rel.Module, err)
		}
	case st.Restart != nil:
		for _, id := range r.selected(*st.Restart) {
			if err := r.powerCycle(ctx, id, 0, "restart"); err != nil {
				return err
			}
		}
	case st.Kill != nil:
		r.kill(ctx, st)
	case st.Press != nil:
		bs, err := r.boards(st.Press.Selector, "press")
		if err != nil {
			return err
		}
		d := time.Duration(st.Press.For)
		if d == 0 {
			d = 200 * time.Millisecond
		}
		r.note("", "press", fmt.Sprintf("%s %s for %v", st.Press.Selector, st.Press.Line, d))
		for _, b := range bs {
			if err := b.Press(st.Press.Line, d); err != nil {
				return fmt.Errorf("press: %w", err)
			}
		}
	case st.MoveGPS != nil:
		g := st.MoveGPS
		bs, err := r.boards(g.Selector, "move_gps")
		if err != nil {
			return err
		}
		r.note("", "move_gps", fmt.Sprintf("%s to %.4f, %.4f", g.Selector, g.Lat, g.Lon))
		for _, b := range bs {
			gps, err := b.GPS(g.Port)
			if err != nil {
				return fmt.Errorf("move_gps: %w", err)
			}
			gps.Move(g.Lat, g.Lon)
		}
	case st.Fault != nil:
		return r.fault(st.Fault, after)
	}
	return nil
}

func (r *run) fault(f *FaultStep, after func(Duration, string, string, func())) error {
	detail := f.Selector.String()
	if f.Kind == "broker_down" {
		detail = ""
	}
	if f.Chip != "" {
		detail += " chip " + f.Chip
	}
	if f.Port != "" {
		detail += " port " + f.Port
	}
	if f.By != 0 {
		detail += " by " + f.By.String()
	}
	if f.For != 0 {
		detail += " for " + f.For.String()
	}
	r.note("", "fault "+f.Kind, strings.TrimSpace(detail))
	if f.Kind == "broker_down" {
		if err := r.broker.Stop(); err != nil {
			return fmt.Errorf("broker_down: %w", err)
		}
		after(f.For, "broker_down", "", func() {
			if err := r.broker.Start(); err != nil {
				r.record(AssertionResult{Name: "broker restart", Reason: err.Error(), At: r.since()})
			}
		})
		return nil
	}
	bs, err := r.boards(f.Selector, "fault "+f.Kind)
	if err != nil {
		return err
	}
	for _, b := range bs {
		switch f.Kind {
		case "network_cut":
			b.Link.Cut()
			after(f.For, f.Kind, "", b.Link.Restore)
		case "clock_jump":
			b.Clock.Jump(time.Duration(f.By))
			after(f.For, f.Kind, "", func() { b.Clock.Jump(-time.Duration(f.By)) })
		case "sensor_stuck", "i2c_nack", "i2c_bus_error", "sensor_noisy":
			c, err := b.Chip(f.Chip)
			if err != nil {
				return fmt.Errorf("fault %s: %w", f.Kind, err)
			}
			if f.Kind == "sensor_noisy" {
				c.SetNoise(sim.TMP102Noise(f.Amplitude, rand.New(rand.NewPCG(r.rng.Uint64(), r.rng.Uint64()))))
				after(f.For, f.Kind, "", func() { c.SetNoise(nil) })
				continue
			}
			c.SetFault(map[string]sim.I2CFault{"sensor_stuck": sim.I2CStuck, "i2c_nack": sim.I2CNACK, "i2c_bus_error": sim.I2CBusError}[f.Kind])
			after(f.For, f.Kind, "", func() { c.SetFault(sim.I2CHealthy) })
		case "serial_silent", "serial_garbage":
			d, err := b.SerialDevice(f.Port)
			if err != nil {
				return fmt.Errorf("fault %s: %w", f.Kind, err)
			}
			d.Fault.SetFault(map[string]sim.SerialFault{"serial_silent": sim.SerialSilent, "serial_garbage": sim.SerialGarbage}[f.Kind])
			after(f.For, f.Kind, "", func() { d.Fault.SetFault(sim.SerialHealthy) })
		}
	}
	return nil
}

// expected is the combined target version a device should report: the
// sum of its scopes' latest versions (internal/daemon's combiner).
func (r *run) expected(id string) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := r.versions[fleet.DeviceScope(id)]
	for _, g := range r.groups[id] {
		v += r.versions[fleet.GroupScope(g)]
	}
	return v
}

// check evaluates an assertion, polling until it holds or its time is up.
func (r *run) check(ctx context.Context, a *Assertion) AssertionResult {
	res := AssertionResult{Name: a.Name, Line: a.line, At: r.since()}
	var within time.Duration
	var eval func() (bool, string)
	switch {
	case a.Converged != nil:
		c := a.Converged
		within = time.Duration(c.Within)
		res.defaultName(fmt.Sprintf("converged: %s within %v", c.Selector, c.Within))
		eval = func() (bool, string) { return r.converged(c.Selector, within) }
	case a.NotConverged != nil:
		c := a.NotConverged
		res.defaultName(fmt.Sprintf("not converged: %s for %v", c.Selector, c.For))
		return r.notConverged(ctx, res, c)
	case a.State != nil:
		c := a.State
		within = time.Duration(c.Within)
		want, _ := json.Marshal(c.Equals)
		res.defaultName(fmt.Sprintf("state: %s has %s = %s within %v", c.Selector, c.Path, want, c.Within))
		eval = func() (bool, string) { return r.stateIs(c) }
	case a.Event != nil:
		c := a.Event
		within = time.Duration(c.Within)
		res.defaultName(fmt.Sprintf("event: %s reported %s within %v", c.Selector, describeEvent(c), c.Within))
		eval = func() (bool, string) { return r.eventSeen(c) }
	case a.RolledBack != nil:
		c := a.RolledBack
		within = time.Duration(c.Within)
		ev := &EventCheck{Selector: c.Selector, Kind: "module.rolled_back", Module: c.Module}
		res.defaultName(fmt.Sprintf("rolled back: %s rolled %s back within %v", c.Selector, c.Module, c.Within))
		eval = func() (bool, string) { return r.eventSeen(ev) }
	case a.NothingLost != nil:
		c := a.NothingLost
		within = time.Duration(c.Within)
		if within == 0 {
			within = 10 * time.Second
		}
		res.defaultName(fmt.Sprintf("nothing lost: %s", c.Selector))
		eval = func() (bool, string) { return r.nothingLost(c.Selector) }
	}
	begin := time.Now()
	for {
		ok, reason := eval()
		if ok || time.Since(begin) >= within || ctx.Err() != nil {
			res.Passed, res.Reason, res.Took = ok, reason, time.Since(begin)
			if !ok && ctx.Err() != nil && time.Since(begin) < within {
				res.Reason += " (the scenario timed out first)"
			}
			return res
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (a *AssertionResult) defaultName(n string) {
	if a.Name == "" {
		a.Name = n
	}
}

func describeEvent(c *EventCheck) string {
	s := c.Kind
	if c.Module != "" {
		s += " of " + c.Module
		if c.Job != "" {
			s += "." + c.Job
		}
	} else if c.Job != "" {
		s += " of job " + c.Job
	}
	if c.Message != "" {
		s += fmt.Sprintf(" saying %q", c.Message)
	}
	return s
}

// why says what a device last said about itself.
func (r *run) why(id string, s seen) string {
	if !s.hasState {
		return id + ": no state reported"
	}
	st := s.state
	msg := fmt.Sprintf("%s: reports target version %d of %d, phase %s", id, st.TargetVersion, r.expected(id), st.Phase)
	if st.Converged {
		msg += ", converged"
	}
	if st.Error != "" {
		msg += ", last error: " + firstLine(st.Error)
	}
	return msg
}

func (r *run) converged(sel Selector, within time.Duration) (bool, string) {
	ids := r.selected(sel)
	var late []string
	var slowest string
	var slowestAt time.Duration
	for _, id := range ids {
		exp := r.expected(id)
		s := r.obs.snapshot(id)
		if exp == 0 {
			late = append(late, id+": no target was pushed to it or its groups")
			continue
		}
		at, ok := s.converged[exp]
		if !ok {
			late = append(late, r.why(id, s))
			continue
		}
		if at >= slowestAt {
			slowest, slowestAt = id, at
		}
	}
	n := len(ids) - len(late)
	if len(late) > 0 {
		return false, fmt.Sprintf("%s: %d of %d converged within %v; %s", sel, n, len(ids), within, list(late, 3))
	}
	return true, fmt.Sprintf("%d of %d converged (the last, %s, at %s)", n, len(ids), slowest, fmtAt(slowestAt))
}

func (r *run) notConverged(ctx context.Context, res AssertionResult, c *NotConvergedChk) AssertionResult {
	begin := time.Now()
	end := begin.Add(time.Duration(c.For))
	for {
		for _, id := range r.selected(c.Selector) {
			s := r.obs.snapshot(id)
			exp := r.expected(id)
			if at, ok := s.converged[exp]; ok && exp > 0 && at >= res.At {
				res.Took = time.Since(begin)
				res.Reason = fmt.Sprintf("%s converged on target version %d at %s, within the %v it should not", id, exp, fmtAt(at), c.For)
				return res
			}
		}
		if time.Now().After(end) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	res.Took = time.Since(begin)
	if ctx.Err() != nil && time.Now().Before(end) {
		res.Reason = "the scenario timed out before the period ended"
		return res
	}
	var whys []string
	for _, id := range r.selected(c.Selector) {
		whys = append(whys, r.why(id, r.obs.snapshot(id)))
	}
	res.Passed = true
	res.Reason = fmt.Sprintf("none converged in %v; %s", c.For, list(whys, 3))
	return res
}

func (r *run) stateIs(c *StateCheck) (bool, string) {
	want := normalize(c.Equals)
	var bad []string
	for _, id := range r.selected(c.Selector) {
		s := r.obs.snapshot(id)
		got, ok := at(s.state.State, c.Path)
		switch {
		case !s.hasState:
			bad = append(bad, id+": no state reported")
		case !ok:
			bad = append(bad, fmt.Sprintf("%s: %s is absent", id, c.Path))
		case !reflect.DeepEqual(got, want):
			g, _ := json.Marshal(got)
			bad = append(bad, fmt.Sprintf("%s: %s is %s", id, c.Path, g))
		}
	}
	w, _ := json.Marshal(want)
	if len(bad) > 0 {
		return false, fmt.Sprintf("want %s; %s", w, list(bad, 3))
	}
	return true, fmt.Sprintf("%s = %s on %s", c.Path, w, c.Selector)
}

func normalize(v any) any {
	b, _ := json.Marshal(v)
	var out any
	json.Unmarshal(b, &out)
	return out
}

func (r *run) eventSeen(c *EventCheck) (bool, string) {
	var missing []string
	var first time.Duration = -1
	ids := r.selected(c.Selector)
	for _, id := range ids {
		s := r.obs.snapshot(id)
		found := false
		kinds := map[string]int{}
		for _, e := range s.events {
			kinds[string(e.Kind)]++
			if string(e.Kind) == c.Kind && (c.Module == "" || e.Module == c.Module) && (c.Job == "" || e.Job == c.Job) &&
				strings.Contains(e.Message, c.Message) {
				found = true
				if first < 0 || e.at < first {
					first = e.at
				}
				break
			}
		}
		if !found {
			missing = append(missing, fmt.Sprintf("%s: none among its %d events (%s)", id, len(s.events), kindSummary(kinds)))
		}
	}
	if len(missing) > 0 {
		return false, fmt.Sprintf("%d of %d reported %s; %s", len(ids)-len(missing), len(ids), describeEvent(c), list(missing, 3))
	}
	return true, fmt.Sprintf("%d of %d reported it (the first at %s)", len(ids), len(ids), fmtAt(first))
}

func kindSummary(kinds map[string]int) string {
	keys := make([]string, 0, len(kinds))
	for k := range kinds {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s×%d", k, kinds[k]))
	}
	if len(parts) == 0 {
		return "no events"
	}
	return strings.Join(parts, ", ")
}

func (r *run) nothingLost(sel Selector) (bool, string) {
	var bad []string
	total, dups := uint64(0), 0
	for _, id := range r.selected(sel) {
		missing, top, d, epochs := r.obs.gaps(id)
		total += top
		dups += d
		switch {
		case len(epochs) > 1:
			bad = append(bad, fmt.Sprintf("%s: its store was replaced during the run (events numbered under epochs %s), so its numbering cannot show what was lost", id, strings.Join(epochs, ", ")))
		case top == 0:
			bad = append(bad, id+": no numbered events arrived")
		case len(missing) > 0:
			bad = append(bad, fmt.Sprintf("%s: of 1…%d, seq %v missing", id, top, missing))
		}
	}
	if len(bad) > 0 {
		return false, list(bad, 3)
	}
	return true, fmt.Sprintf("%d events, seq contiguous from 1 on every device; %d duplicate deliveries dropped", total, dups)
}

// list joins up to n items and says how many more there are.
func list(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, "; ")
	}
	return strings.Join(items[:n], "; ") + fmt.Sprintf("; and %d more", len(items)-n)
}

func fmtAt(d time.Duration) string {
	return fmt.Sprintf("+%.1fs", d.Seconds())
}

// fill completes a result from what the run saw.
func (r *run) fill(res *Result) {
	r.mu.Lock()
	res.Assertions = slices.Clone(r.results)
	res.Timeline = slices.Clone(r.timeline)
	r.mu.Unlock()
	if r.obs != nil {
		res.Timeline = append(res.Timeline, r.obs.entries()...)
	}
	sort.SliceStable(res.Timeline, func(i, j int) bool { return res.Timeline[i].At < res.Timeline[j].At })
	failed := res.Failed() > 0 || res.Error != ""
	for _, a := range r.agents {
		d := DeviceResult{ID: a.ID()}
		if r.obs != nil {
			s := r.obs.snapshot(a.ID())
			d.TargetVersion, d.Converged, d.Phase, d.Error, d.Modules = s.state.TargetVersion, s.state.Converged, string(s.state.Phase), s.state.Error, s.state.Modules
			d.Events, d.LastSeq = len(s.events), s.maxSeq
		}
		if failed {
			d.Log = r.logs[a.ID()].lines()
		}
		res.Devices = append(res.Devices, d)
	}
}

// ring keeps an agent's last warnings.
type ring struct {
	mu   sync.Mutex
	max  int
	kept []string
}

func (g *ring) Write(p []byte) (int, error) {
	if strings.Contains(string(p), "without a signature check") {
		return len(p), nil // the testbench runs without operator keys, on purpose
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.kept = append(g.kept, strings.TrimSpace(string(p)))
	if len(g.kept) > g.max {
		g.kept = g.kept[len(g.kept)-g.max:]
	}
	return len(p), nil
}

func (g *ring) lines() []string {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.kept)
}

// agentHandler keeps warnings in g and, with all set, writes everything
// there too, prefixed with the agent's id.
func agentHandler(g *ring, all io.Writer, id string) slog.Handler {
	warn := slog.NewTextHandler(g, &slog.HandlerOptions{Level: slog.LevelWarn, ReplaceAttr: dropTime})
	if all == nil {
		return warn
	}
	return multiHandler{warn, slog.NewTextHandler(all, &slog.HandlerOptions{Level: slog.LevelInfo}).WithAttrs([]slog.Attr{slog.String("agent", id)})}
}

func dropTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

type multiHandler []slog.Handler

func (m multiHandler) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range m {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (m multiHandler) Handle(ctx context.Context, rec slog.Record) error {
	var errs []error
	for _, h := range m {
		if h.Enabled(ctx, rec.Level) {
			errs = append(errs, h.Handle(ctx, rec.Clone()))
		}
	}
	return errors.Join(errs...)
}

func (m multiHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make(multiHandler, len(m))
	for i, h := range m {
		out[i] = h.WithAttrs(attrs)
	}
	return out
}

func (m multiHandler) WithGroup(name string) slog.Handler {
	out := make(multiHandler, len(m))
	for i, h := range m {
		out[i] = h.WithGroup(name)
	}
	return out
}
