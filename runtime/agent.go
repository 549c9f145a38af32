package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"maps"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/hal/i2c"
	"github.com/tern-iot/tern/hal/serial"
	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/runtime/api"
	"github.com/tern-iot/tern/runtime/internal/wasmhost"
	"github.com/tern-iot/tern/runtime/jobs"
	"github.com/tern-iot/tern/runtime/layer"
	"github.com/tern-iot/tern/runtime/plan"
	"github.com/tern-iot/tern/runtime/state"
	"github.com/tern-iot/tern/runtime/store"
)

// Reporter carries the agent's status and events to the fleet. Both calls
// may fail while offline; the agent retries status and queues events.
type Reporter interface {
	PublishState(ctx context.Context, s Status) error
	PublishEvent(ctx context.Context, e Event) error
}

// Grants are the resources a device gives a module.
type Grants = api.Grants

// ModuleSpec is a module the device runs: its code and what it may touch.
type ModuleSpec struct {
	// Name is the module's name; it must match its manifest.
	Name string
	// Wasm is the module's code. Nil means: the version installed in the
	// store earlier.
	Wasm   []byte
	Grants Grants
	// Config is the module's device configuration (JSON), passed to every call.
	Config json.RawMessage
	// Expand names the modules whose jobs this module's methods may
	// expand into although their hardware is not granted to it. Without
	// it, a method expands only into jobs of modules whose grants are all
	// its own too.
	Expand []string

	// hash is codeHash(Wasm), computed ahead by Hashed, for the slice
	// that starts at code and holds size bytes.
	hash string
	code *byte
	size int
}

// Hashed returns s with its code's SHA-256 computed, which New would
// compute otherwise: a caller that reads the code while something else
// waits (ternd reads the modules while the store opens) hashes it there. A
// Go module takes 7 ms to hash on the amd64 VM, tens of ms on a board
// without SHA instructions. The hash holds for the slice s.Wasm as it is:
// New hashes again code given as another slice; bytes changed in place
// after Hashed are not noticed.
func (s ModuleSpec) Hashed() ModuleSpec {
	if s.Wasm != nil {
		s.hash, s.code, s.size = codeHash(s.Wasm), unsafe.SliceData(s.Wasm), len(s.Wasm)
	}
	return s
}

// withoutCode clears s's code, and the hash Hashed kept (its pointer would
// keep the code's memory).
func (s *ModuleSpec) withoutCode() {
	s.Wasm, s.hash, s.code, s.size = nil, "", nil, 0
}

// codeHash returns the hash of s.Wasm, computed by Hashed if it was.
func (s ModuleSpec) codeHash() string {
	if s.hash != "" && unsafe.SliceData(s.Wasm) == s.code && len(s.Wasm) == s.size {
		return s.hash
	}
	return codeHash(s.Wasm)
}

// Options configure an Agent. Zero fields take the documented defaults.
type Options struct {
	Store    store.Store   // required
	GPIO     gpio.Lookup   // the board's GPIO; nil if none
	I2C      i2c.Lookup    // the board's I2C buses; nil if none
	Serial   serial.Opener // the board's serial ports; nil if none
	Modules  []ModuleSpec
	CacheDir string       // compilation cache; empty: none
	Logger   *slog.Logger // nil: discard
	Reporter Reporter     // nil: nobody listens
	// Parallelism bounds tasks running at once. Default 4.
	Parallelism int
	// RetryMin and RetryMax bound the backoff after a failed attempt.
	// Defaults 1 s and 1 min.
	RetryMin, RetryMax time.Duration
	// Heartbeat is how often status is republished even when unchanged.
	// Default 1 min.
	Heartbeat time.Duration
	// Limits bound planning.
	Limits plan.Limits
	// Strict also removes what the target does not name, where a job can
	// (see plan.Options).
	Strict bool
	// AllOrNothing plans the whole target or nothing: when part of it
	// cannot be reached, nothing runs and a plan.failed event says why.
	// By default the agent reaches the rest (a partial plan, the
	// plan.partial event) and tries the unreached part again with backoff.
	AllOrNothing bool
	// CallTimeout bounds one call into a module. Default 10 s.
	CallTimeout time.Duration
	// SensorTimeout bounds one sensor call. Default CallTimeout.
	SensorTimeout time.Duration
	// ModuleMemoryMiB caps each module instance's linear memory. Default 128.
	ModuleMemoryMiB int
	// CompileCommand, if set, is the argv of a child process that
	// compiles each new module under CompileTimeout and CompileMemoryMiB
	// (the child calls ServeCompile; ternd's is "ternd compile-module").
	// Nil: modules compile in the agent's process. It needs CacheDir.
	CompileCommand []string
	// CompileTimeout bounds compiling one module. Default 1 min.
	CompileTimeout time.Duration
	// CompileMemoryMiB bounds the memory compiling one module may take.
	// Default 1024.
	CompileMemoryMiB int
	// SharedGrants names hardware that more than one module may be
	// granted ("GPIO4", "i2c1:0x48", "ttyS0"); any other is refused at
	// start when two modules are granted it.
	SharedGrants []string
	// Trust holds the operator keys modules must be signed with. Empty:
	// unsigned modules are accepted (development), with a warning.
	Trust signing.Trust
	// Clock is the board's wall clock (its RTC, or NTP), which stamps
	// events and status reports. Nil: time.Now. Timers (backoff, sensing,
	// heartbeats) run on the monotonic clock and ignore it, so a jump of
	// the wall clock changes the stamps only; the testbench jumps it.
	Clock func() time.Time
	// Facts are what the device knows about itself, which conditional
	// target layers match (runtime/layer): ternd gives its id, board,
	// architecture, groups and ternd.yaml's facts. Nil: none, and a
	// layer that names a fact never applies.
	Facts layer.Facts
	// Report, if set, adds to every status the agent reports what it does
	// not know itself: ternd's inventory (Status.Agent) and the summary
	// of its metrics (Status.Metrics), which take the agent's counters
	// (Agent.Metrics) and the fleet connection's. It runs on the agent's
	// loop, at most once a report; what it adds changes no report by
	// itself: a status is published when the rest of it changes, or at
	// the heartbeat.
	Report func(*Status)
	// ClockSynced reports whether the wall clock is synchronised (NTP);
	// jobs with a wall-clock time wait until it is (docs/jobs.md). Nil:
	// it always is.
	ClockSynced func() bool
}

func (o Options) withDefaults() Options {
	if o.Parallelism == 0 {
		o.Parallelism = 4
	}
	if o.RetryMin == 0 {
		o.RetryMin = time.Second
	}
	if o.RetryMax == 0 {
		o.RetryMax = time.Minute
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return o
}

// Errors callers branch on.
var (
	// ErrStaleTarget: a target older than the one held was offered.
	ErrStaleTarget = errors.New("runtime: target version is older than the one held")
	// ErrBadTarget: the target is not a JSON object.
	ErrBadTarget = errors.New("runtime: target must be a JSON object")
)

// Agent is one device's agent.
type Agent struct {
	opts Options
	log  *slog.Logger
	set  *modset
	ev   evaluator

	wake     chan struct{}       // a new target arrived
	pending  chan struct{}       // the reporter refused an event, which waits: see idleWait
	installs chan installRequest // new module code, for the loop to swap in
	reported chan struct{}       // the status changed outside the loop (SetRollouts): report it

	pubMu      sync.Mutex    // serializes handing events to the reporter; guards pubFailing
	pubFailing bool          // the reporter refused the last event (said at Warn once)
	busySince  atomic.Int64  // unix nanoseconds the loop's current step began; 0 between steps (see Busy)
	steps      atomic.Uint64 // steps the loop has finished (see Steps)

	mu         sync.Mutex
	target     any // base with the active layers over it: what the agent pursues
	lay        layering
	version    uint64
	current    any
	status     Status
	events     []Event // not yet accepted by the reporter, oldest first
	unqueued   int     // events dropped from a full queue, not told of yet
	stateFails bool    // the reporter refused the last status (said at Warn once)
	lastSent   []byte  // last status published, to publish on change only
	sentAt     time.Time
	failures   int
	nextTry    time.Time
	converged  bool
	savedState []byte            // last state written to the store
	replan     string            // why the next plan is a re-plan; empty for a first plan
	partial    string            // the version and a hash of the explanation of the last partial plan reported
	modsGen    uint64            // counts changes of the module set
	missing    map[string]string // configured modules that did not load, and why
	cover      coverage          // target paths no loaded module handles
	busyWhy    string            // what the busy sensors say, "" when not busy (BusyReason)

	specs       map[string]ModuleSpec   // as configured, by module name
	codes       map[string]string       // code hash of each module that runs, by name
	sensing     map[string]bool         // modules whose sensor round is under way
	evRates     map[string]*eventBucket // module.error events allowed, by module
	rounds      sync.WaitGroup          // sensor rounds under way; Run waits for them
	strikes     map[string]int          // consecutive failed calls, by module
	lastFailure map[string]string       // modules due for rollback, and why

	// Fleet jobs (jobrun.go).
	book      *jobs.Book
	jobWake   chan struct{} // a job arrived
	jobMu     sync.Mutex    // guards the fields below
	jobDirty  map[string]bool
	jobStale  bool      // something changed: decide again
	jobDue    time.Time // the earliest time a waiting job is due; zero: none
	jobClock  bool      // a job waits for the clock to be synchronised
	jobTimed  bool      // a job waits for a wall-clock time
	jobSynced bool      // whether the clock was synchronised at the last decision

	// previews hands candidates to the loop (preview.go).
	previews chan previewRequest

	metrics   *metrics          // counters (metrics.go)
	plan      *api.PlanGraph    // the plan running or last run, under mu (observe.go)
	factsTold map[string]string // modules whose bad facts were logged, and what was said
}

// New loads the modules and the stored target. Close the agent when done.
func New(ctx context.Context, opts Options) (*Agent, error) {
	opts = opts.withDefaults()
	if opts.Store == nil {
		return nil, errors.New("runtime: Options.Store is required")
	}
	a := &Agent{opts: opts, log: opts.Logger, wake: make(chan struct{}, 1), pending: make(chan struct{}, 1), jobWake: make(chan struct{}, 1), reported: make(chan struct{}, 1), installs: make(chan installRequest), current: map[string]any{},
		specs: map[string]ModuleSpec{}, codes: map[string]string{}, sensing: map[string]bool{}, evRates: map[string]*eventBucket{}, strikes: map[string]int{}, lastFailure: map[string]string{}, missing: map[string]string{}}
	a.previews = make(chan previewRequest)
	a.metrics, a.factsTold = newMetrics(), map[string]string{}
	if err := checkSharedGrants(opts.Modules, opts.SharedGrants); err != nil {
		return nil, err
	}
	host, err := wasmhost.New(ctx, wasmhost.Options{
		CacheDir: opts.CacheDir, GPIO: opts.GPIO, I2C: opts.I2C, Serial: opts.Serial, Logger: opts.Logger,
		CallTimeout: opts.CallTimeout, SenseTimeout: opts.SensorTimeout,
		MemoryLimitPages: uint32(opts.ModuleMemoryMiB) * 16,
		Isolation:        wasmhost.Isolation{Command: opts.CompileCommand, Timeout: opts.CompileTimeout, MemoryMiB: opts.CompileMemoryMiB},
		Notify: func(module, problem string) {
			a.event(Event{Kind: EventModuleError, Module: module, Message: problem})
		},
		Observe: a.metrics.call,
	})
	if err != nil {
		return nil, err
	}
	a.set = &modset{host: host, log: opts.Logger}
	a.ev = evaluator{mods: a.set.module, event: a.event, outcome: a.moduleOutcome}
	if err := a.loadTarget(); err != nil {
		host.Close(ctx)
		return nil, err
	}
	if err := a.loadState(); err != nil {
		host.Close(ctx)
		return nil, err
	}
	if err := a.openJobs(); err != nil {
		host.Close(ctx)
		return nil, err
	}
	for _, spec := range opts.Modules {
		// A module that cannot be loaded is left out, with an event: the
		// agent and the other modules keep working.
		if err := a.load(ctx, spec); err != nil {
			a.log.Error("module not loaded", "module", spec.Name, "err", err)
			a.event(Event{Kind: EventModuleError, Module: spec.Name, Message: "not loaded: " + err.Error()})
			a.missing[spec.Name] = clip(firstLine(err.Error()), 256)
		}
	}
	a.dropCode()
	a.interruptedInstalls()
	a.status = Status{Phase: PhaseIdle, TargetVersion: a.version}
	a.modulesChanged()
	a.updateFacts()
	if err := a.resumeProgress(); err != nil {
		host.Close(ctx)
		return nil, err
	}
	return a, nil
}

// Close releases the modules. The store belongs to the caller.
func (a *Agent) Close(ctx context.Context) error { return a.set.host.Close(ctx) }

// modulesChanged publishes which modules run, in what version, after the
// loop (or New) changed the set.
func (a *Agent) modulesChanged() {
	codes := map[string]string{}
	for _, mod := range a.set.mods {
		codes[mod.name] = mod.hash
	}
	a.mu.Lock()
	a.codes = codes
	a.status.Modules = a.moduleVersions()
	a.modsGen++
	for name := range codes {
		delete(a.missing, name)
	}
	a.status.MissingModules = maps.Clone(a.missing)
	a.mu.Unlock()
}

func (a *Agent) moduleVersions() map[string]string {
	m := map[string]string{}
	for _, mod := range a.set.mods {
		m[mod.name] = mod.m.Manifest().Version
	}
	return m
}

// Target returns the target held and its version (nil, 0 if none).
func (a *Agent) Target() (any, uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return state.Clone(a.target), a.version
}

// Status returns the agent's latest status.
func (a *Agent) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.status
	s.Converged = a.converged
	s.State = state.Canonical(a.current)
	s.Plan = copyPlan(a.plan)
	a.layerStatus(&s)
	return s
}

// SetTarget stores a new target and wakes the loop. A version equal to the
// one held is a duplicate (retained messages are delivered again on every
// reconnect) and is ignored; an older one is refused with ErrStaleTarget.
// Both the refusal and the acceptance are reported as events.
func (a *Agent) SetTarget(version uint64, doc json.RawMessage) error {
	return a.setTarget(version, doc, "", nil)
}

// ReplaceTarget stores a target whatever the version held, lower included,
// and wakes the loop: an operator's signed rebase (see fleet's
// TargetEnvelope.Replaces) takes a device back from a runaway version.
// why says which rebase, for the event.
func (a *Agent) ReplaceTarget(version uint64, doc json.RawMessage, why string) error {
	return a.setTarget(version, doc, why, nil)
}

// setTarget is SetTarget, or ReplaceTarget when rebase (why) is not empty,
// with layers over the target (SetLayeredTarget).
func (a *Agent) setTarget(version uint64, doc json.RawMessage, rebase string, layers []layer.Layer) error {
	v, err := state.Parse(doc)
	if err == nil {
		if _, ok := v.(map[string]any); !ok {
			err = ErrBadTarget
		}
	}
	if err != nil {
		err = fmt.Errorf("%w: %v", ErrBadTarget, err)
		a.event(Event{Kind: EventTargetRefused, TargetVersion: version, Message: err.Error()})
		return err
	}
	a.mu.Lock()
	held := a.version
	if rebase == "" && version == held && a.lay.base != nil {
		a.mu.Unlock()
		return nil
	}
	if rebase == "" && version < held {
		a.mu.Unlock()
		err := fmt.Errorf("%w: got version %d, holding %d; push a version above %d", ErrStaleTarget, version, held, held)
		a.event(Event{Kind: EventTargetRefused, TargetVersion: version, Message: err.Error()})
		return err
	}
	if err := a.saveTarget(version, doc, layers); err != nil {
		a.mu.Unlock()
		return err
	}
	var msg string
	if rebase != "" {
		msg = fmt.Sprintf("rebase from version %d: %s", held, rebase)
	}
	if a.lay.base != nil {
		// Whatever the last attempt did, this plan is for the new target.
		a.replan = fmt.Sprintf("a new target arrived: version %d replaces %d", version, held)
		if rebase != "" {
			a.replan = fmt.Sprintf("a rebase took the target from version %d to %d", held, version)
		}
	}
	a.version = version
	a.setLayered(v, layers)
	a.status.TargetVersion = version
	a.converged = false
	a.failures, a.nextTry = 0, time.Time{}
	a.mu.Unlock()
	a.event(Event{Kind: EventTargetAccepted, TargetVersion: version, Message: msg})
	select {
	case a.wake <- struct{}{}:
	default:
	}
	return nil
}

// SetRollouts replaces what the status says of rollouts (Status.Rollouts;
// ternd's rollout gate keeps it) and has the loop report it.
func (a *Agent) SetRollouts(r map[string]api.RolloutStatus) {
	a.mu.Lock()
	a.status.Rollouts = maps.Clone(r)
	a.mu.Unlock()
	signal(a.reported)
}

// Refused reports a target or message the agent never got to see because
// it was malformed on the way in (e.g. an envelope that did not parse).
func (a *Agent) Refused(version uint64, err error) {
	a.event(Event{Kind: EventTargetRefused, TargetVersion: version, Message: err.Error()})
}

// Run is the agent's loop. It returns when ctx is done.
func (a *Agent) Run(ctx context.Context) error {
	var next loopTimer
	defer next.stop()
	for {
		a.busySince.Store(time.Now().UnixNano())
		a.step(ctx)
		a.runJobs(ctx) // between steps: never beside a plan's tasks
		a.report(ctx)
		a.steps.Add(1)
		a.busySince.Store(0)
	wait:
		for {
			select {
			case <-ctx.Done():
				a.rounds.Wait() // they stop with ctx
				a.report(context.WithoutCancel(ctx))
				return nil
			case <-a.wake:
			case <-a.jobWake:
			case <-a.reported:
			case <-next.jobs(a): // a job's time, to the millisecond, between sensor ticks
			case <-next.layers(a): // a layer's window opens or closes
			case <-next.after(a):
			case <-a.pending:
				continue wait // an event failed meanwhile: when to wake, again
			case req := <-a.installs:
				a.busySince.Store(time.Now().UnixNano())
				req.done <- a.installNow(ctx, req) // the new code may sense more often: after sees to it
			case req := <-a.previews:
				start := time.Now()
				p := a.previewNow(ctx, req)
				p.Took = time.Since(start)
				req.done <- p
				continue wait // nothing changed: no step for it
			}
			break
		}
	}
}

// signal makes a coalescing send on ch, which has a buffer of one.
func signal(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// loopTimer wakes the loop by itself. While a module senses, it ticks at
// the fastest sensor's interval (a ticker: the sensors keep their cadence
// however long a step takes); with no sensor, only when the loop has
// something to do (see idleWait), so that an agent with nothing to sense
// does not wake every second for nothing.
type loopTimer struct {
	tick  *time.Ticker
	every time.Duration // tick's interval
	idle  *time.Timer
	job   *time.Timer // the next job's time (jobrun.go)
	layer *time.Timer // the next edge of a layer's window (layers.go)
}

// jobs returns the channel of the next job's time, nil if none is due.
func (l *loopTimer) jobs(a *Agent) <-chan time.Time {
	d, ok := a.jobsWait(a.opts.Clock())
	if !ok {
		return nil
	}
	d = max(d, time.Millisecond)
	if l.job == nil {
		l.job = time.NewTimer(d)
	} else {
		l.job.Reset(d)
	}
	return l.job.C
}

// after returns the channel of the loop's next wake-up, for the module
// set a has now.
func (l *loopTimer) after(a *Agent) <-chan time.Time {
	if a.senses() {
		switch iv := a.senseInterval(); {
		case l.tick == nil:
			l.tick, l.every = time.NewTicker(iv), iv
		case iv != l.every:
			l.tick.Reset(iv)
			l.every = iv
		}
		return l.tick.C
	}
	if l.tick != nil {
		l.tick.Stop()
		l.tick = nil
	}
	d := a.idleWait()
	if l.idle == nil {
		l.idle = time.NewTimer(d)
	} else {
		l.idle.Reset(d)
	}
	return l.idle.C
}

func (l *loopTimer) stop() {
	if l.tick != nil {
		l.tick.Stop()
	}
	if l.idle != nil {
		l.idle.Stop()
	}
	if l.job != nil {
		l.job.Stop()
	}
	if l.layer != nil {
		l.layer.Stop()
	}
}

// senses reports whether a loaded module has a sensor.
func (a *Agent) senses() bool {
	for _, m := range a.set.mods {
		if len(m.sensors) > 0 {
			return true
		}
	}
	return false
}

// idleAgain is how soon a loop with no sensor to tick it tries again what
// failed (a status or event the reporter refused, a module due for
// rollback): when the loop ticked every second with or without sensors,
// that was the pace.
const idleAgain = time.Second

// idleWait is how long the loop of an agent with no sensor may wait when
// nothing wakes it: until the next attempt after a failed one, the status
// heartbeat, or the summary of module.error events held back, whichever
// is first; at most a heartbeat. The host's summaries of refused hardware
// (at most every 10 minutes) go out with the next step after they are
// due: within a heartbeat.
func (a *Agent) idleWait() time.Duration {
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stateFails || len(a.events) > 0 || len(a.lastFailure) > 0 ||
		a.opts.Reporter != nil && a.lastSent == nil || a.jobsUnpublished() {
		return idleAgain
	}
	wait := a.opts.Heartbeat
	if a.opts.Reporter != nil {
		wait = a.sentAt.Add(a.opts.Heartbeat).Sub(now)
	}
	if !a.nextTry.IsZero() {
		wait = min(wait, a.nextTry.Sub(now))
	}
	for _, b := range a.evRates {
		if b.dropped > 0 {
			wait = min(wait, b.since.Add(time.Minute).Sub(now))
		}
	}
	if d, ok := a.jobsWait(a.opts.Clock()); ok {
		wait = min(wait, d)
	}
	return max(wait, 10*time.Millisecond)
}

// Steps reports how many times the loop has sensed, planned and run if
// needed, and reported, since Run began: 0 means the agent has not yet
// looked at its hardware, whatever its Status says.
func (a *Agent) Steps() uint64 { return a.steps.Load() }

// Busy reports how long the agent's loop has been in its current step
// (sensing, planning, running a plan, installing a module), or 0 while it
// waits for the next. A loop that stays busy far longer than its jobs'
// deadlines allow is hung: ternd then stops feeding systemd's watchdog,
// which restarts it.
func (a *Agent) Busy() time.Duration {
	since := a.busySince.Load()
	if since == 0 {
		return 0
	}
	return time.Since(time.Unix(0, since))
}

// step senses, and plans and runs if the state does not meet the target.
func (a *Agent) step(ctx context.Context) {
	a.rollbacks(ctx)
	if err := a.sense(ctx); err != nil {
		a.log.Warn("sensing failed", "err", err)
	}
	a.updateBusy()
	a.updateFacts()
	a.layersTick() // by the wall clock, every step: offline too
	if a.check() {
		return
	}
	a.mu.Lock()
	target, version, nextTry := a.target, a.version, a.nextTry
	current := state.Clone(a.current)
	a.mu.Unlock()
	if time.Now().Before(nextTry) {
		return
	}
	err := a.converge(ctx, current, target, version)
	a.mu.Lock()
	if errors.Is(err, errSuperseded) {
		a.mu.Unlock()
		return
	}
	if err != nil {
		a.replan = "the last attempt failed: " + firstLine(err.Error())
		a.failures++
		backoff := min(a.opts.RetryMin<<min(a.failures-1, 16), a.opts.RetryMax)
		a.nextTry = time.Now().Add(backoff)
		a.status.Phase, a.status.Error = PhaseFailed, clip(err.Error(), maxEventText)
		a.status.Unreached = unreachedPaths(err)
		a.mu.Unlock()
		a.log.Warn("attempt failed", "err", err, "retry_in", backoff)
		return
	}
	a.status.Phase, a.status.Error, a.status.Unreached = PhaseIdle, "", nil
	a.nextTry = time.Time{}
	a.mu.Unlock()
	a.check() // converge sensed afresh: report convergence now, not a tick later
}

// check compares the current state with the target, records convergence
// and drift, and reports whether there is nothing to do.
func (a *Agent) check() bool {
	a.mu.Lock()
	target, version, was := a.target, a.version, a.converged
	if target == nil {
		a.mu.Unlock()
		return true
	}
	sat := plan.Satisfied(a.set.jobs, a.current, target, a.opts.Strict)
	// The state meets the target only where a loaded module senses or
	// sets it; elsewhere its values come from the store (or nowhere), and
	// planning cannot help until a module that handles them arrives.
	a.updateCoverage()
	a.status.Unhandled = a.cover.paths
	gap := sat && len(a.cover.paths) > 0
	now := sat && !gap
	var unmet []state.Pointer
	if !sat {
		unmet = state.Unsatisfied(a.current, target)
	}
	var gapMsg string
	if gap {
		gapMsg = a.unhandledError()
		a.status.Error = clip(gapMsg, maxEventText)
		if a.cover.told {
			gapMsg = ""
		}
		a.cover.told = true
	}
	a.mu.Unlock()
	if gapMsg != "" {
		a.event(Event{Kind: EventPlanFailed, TargetVersion: version, Message: gapMsg})
		a.log.Warn("not converged", "target_version", version, "why", gapMsg)
	}
	if now && !was {
		// The event first: whoever sees the status converged finds the
		// event too (check runs on the loop's goroutine only).
		a.event(Event{Kind: EventConverged, TargetVersion: version})
	}
	a.mu.Lock()
	a.converged = now
	if now && !was {
		a.failures, a.status.Error, a.status.Phase = 0, "", PhaseIdle
		a.status.Unreached, a.partial = nil, ""
	}
	a.mu.Unlock()
	switch {
	case now && !was:
		a.log.Info("converged", "target_version", version)
	case !now && was && !gap:
		a.mu.Lock()
		a.replan = "drift: " + pointers(unmet)
		a.mu.Unlock()
		a.event(Event{Kind: EventDrift, TargetVersion: version, Message: "sensed state no longer meets the target: " + pointers(unmet)})
		a.log.Info("drift", "target_version", version, "unmet", pointers(unmet))
	}
	return now || gap
}

// errSuperseded: a new target arrived while a plan ran; the rest of the
// plan was not started and the agent plans again at once.
var errSuperseded = errors.New("runtime: superseded by a new target")

// converge plans from current to target and runs the plan, then senses.
// Progress is persisted after every task, so that after a crash the agent
// re-plans from the effects already in place instead of redoing them.
func (a *Agent) converge(ctx context.Context, current, target any, version uint64) error {
	a.setPhase(PhasePlanning)
	a.mu.Lock()
	why := a.replan
	a.replan = ""
	a.mu.Unlock()
	p, err := plan.Find(wasmhost.WithPlanTime(ctx, time.Now()), a.set.jobs, a.ev, current, target, plan.Options{Limits: a.opts.Limits, Strict: a.opts.Strict, MayExpand: a.set.mayExpand, Partial: !a.opts.AllOrNothing})
	unreached, quiet := a.partialOutcome(p, err, version)
	if quiet {
		return unreached
	}
	if why != "" {
		a.event(Event{Kind: EventReplan, TargetVersion: version, Message: why})
	}
	if err == nil && unreached != nil && len(p.Tasks) == 0 {
		err = unreached // nothing to run: for the fleet, no plan, and why
	}
	if err != nil {
		a.event(Event{Kind: EventPlanFailed, TargetVersion: version, Message: err.Error()})
		return err
	}
	if unreached != nil {
		a.event(Event{Kind: EventPlanPartial, TargetVersion: version, Message: unreached.Error()})
	}
	a.event(Event{Kind: EventPlanFound, TargetVersion: version, Message: planSummary(p)})
	graph := planGraph(version, p)
	a.mu.Lock()
	a.plan = graph
	a.mu.Unlock()
	a.setPhase(PhaseRunning)
	// Said before the tasks run, which may take minutes (a room to warm):
	// the fleet sees the new target accepted, its plan and the device
	// on its way, not only where the plan ended.
	a.report(ctx)
	prog := newProgress(version, p)
	a.saveProgress(prog)
	stop, superseded := make(chan struct{}), false
	closeStop := sync.OnceFunc(func() { close(stop) })
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for {
			select {
			case <-a.wake:
				a.mu.Lock()
				newer := a.version != version
				a.mu.Unlock()
				if newer { // not the wake-up for the target this plan serves
					superseded = true
					closeStop()
					return
				}
			case <-stop:
				return
			}
		}
	}()
	err = plan.Run(ctx, p, a.ev, live{a}, plan.RunOptions{Parallel: a.opts.Parallelism, Stop: stop, Observer: func(t *plan.Task, o plan.Outcome, err error) {
		e := Event{TargetVersion: version, Module: t.Job.Module, Job: t.Job.Spec.Name, Path: t.Path.String()}
		switch o {
		case plan.Started:
			e.Kind = EventTaskStarted
			a.setTaskState(graph, t.ID, "running")
		case plan.Done:
			e.Kind = EventTaskDone
			a.persistState()
			a.saveProgress(prog.set(t.ID, "done"))
			a.setTaskState(graph, t.ID, "done")
		case plan.Failed, plan.Skipped:
			e.Kind, e.Message = EventTaskFailed, err.Error()
			a.saveProgress(prog.set(t.ID, "failed"))
			a.setTaskState(graph, t.ID, "failed")
		}
		a.event(e)
	}})
	closeStop()
	<-watchDone // after this, superseded is safe to read
	a.clearProgress()
	if serr := a.sense(ctx); serr != nil {
		a.log.Warn("sensing after run failed", "err", serr)
	}
	if superseded {
		a.event(Event{Kind: EventReplan, TargetVersion: version, Message: "a new target arrived while the plan ran; the rest of this plan is dropped"})
		select {
		case a.wake <- struct{}{}: // plan for the new target at once
		default:
		}
		return errSuperseded
	}
	if err == nil && unreached != nil {
		return unreached // not converged: step retries with backoff
	}
	return err
}

// partialOutcome is why the partial plan p (from plan.Find's p, err)
// leaves part of the target unreached, or nil. quiet is true when it is
// the same for the same target as the attempt before and there is nothing
// to run: a device retries with backoff for as long as a part cannot be
// reached, and every retry would say again what the status already says.
func (a *Agent) partialOutcome(p *plan.Plan, err error, version uint64) (unreached error, quiet bool) {
	if err != nil {
		a.mu.Lock()
		a.partial = ""
		a.mu.Unlock()
		return nil, false
	}
	unreached = p.UnreachedError()
	said := ""
	if unreached != nil {
		// A hash, not the text: 28,000 keys no module handles explain
		// themselves in 2 MB.
		h := fnv.New64a()
		io.WriteString(h, unreached.Error())
		said = strconv.FormatUint(version, 10) + "/" + strconv.FormatUint(h.Sum64(), 16)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	quiet = said != "" && said == a.partial && len(p.Tasks) == 0
	a.partial = said
	return unreached, quiet
}

// unreachedPaths lists the paths err says a partial plan left out, at
// most maxUnhandled (Status.Error says how many).
func unreachedPaths(err error) []string {
	var pe *plan.PartialError
	if !errors.As(err, &pe) {
		return nil
	}
	var out []string
	for _, st := range pe.Places[:min(len(pe.Places), maxUnhandled)] {
		out = append(out, st.Path)
	}
	return out
}

func planSummary(p *plan.Plan) string {
	return fmt.Sprintf("%d tasks (%d jobs tried, %d module calls, %v)", len(p.Tasks), p.Stats.Tries, p.Stats.Calls, p.Stats.Duration.Round(time.Microsecond))
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func (a *Agent) setPhase(p Phase) {
	a.mu.Lock()
	a.status.Phase = p
	a.mu.Unlock()
}

// event queues an event for the reporter, stamped with an id and time.
func (a *Agent) event(e Event) {
	if len(e.Message) > maxEventText || len(e.Path) > maxEventPath {
		// The report carries a cut text; the device's log keeps it whole.
		a.log.Info("event text cut for its report; whole here", "kind", e.Kind, "module", e.Module, "path", e.Path, "message", e.Message)
		e.Message, e.Path = clip(e.Message, maxEventText), clip(e.Path, maxEventPath)
		e.Truncated = true
	}
	e.ID = NewEventID()
	e.Time = a.opts.Clock().UTC()
	a.metrics.count(e, e.Time)
	a.mu.Lock()
	if key, ok := rateKey(e); ok && !a.moduleEvents(key).allow(time.Now()) {
		a.mu.Unlock()
		return
	}
	a.log.Debug("event", "kind", e.Kind, "path", e.Path, "message", e.Message)
	a.queue(e)
	a.mu.Unlock()
	// Hand it to the reporter now, not when the loop next reports: the
	// loop is busy while a plan runs, and an event still queued here when
	// the process dies (a power cut mid-plan) would be lost unnumbered.
	a.publishEvents(context.Background())
}

// jobRefusals is the event bucket of job.refused events: a broker may
// hold any number of jobs for a device, each refused at every connection
// (a forged signature, a full book). No module has this name.
const jobRefusals = " job.refused"

// rateKey is the event bucket e counts against, if any: its module's for
// module.error, jobRefusals for job.refused.
func rateKey(e Event) (string, bool) {
	switch {
	case e.Kind == EventModuleError && e.Module != "":
		return e.Module, true
	case e.Kind == EventJobRefused:
		return jobRefusals, true
	}
	return "", false
}

// moduleEvents is module's event bucket. Call with a.mu held.
func (a *Agent) moduleEvents(module string) *eventBucket {
	b := a.evRates[module]
	if b == nil {
		b = &eventBucket{}
		a.evRates[module] = b
	}
	return b
}

// heldBack reports, for each module, the module.error events held back
// by its rate bound (at most once a minute each).
func (a *Agent) heldBack() {
	now := time.Now()
	a.mu.Lock()
	var sums []Event
	for name, b := range a.evRates {
		if e, ok := b.summary(name, now); ok {
			if name == jobRefusals {
				e = Event{Kind: EventJobRefused, Message: strings.Replace(e.Message, "module.error events of this module", "job.refused events", 1)}
				e.Message = strings.Replace(e.Message, ", per module)", ")", 1)
			}
			sums = append(sums, e)
		}
	}
	a.mu.Unlock()
	for _, e := range sums {
		e.ID, e.Time = NewEventID(), a.opts.Clock().UTC()
		a.mu.Lock()
		a.queue(e)
		a.mu.Unlock()
	}
}

// queue adds e to the events for the reporter. Call with a.mu held.
func (a *Agent) queue(e Event) {
	const maxQueued = 1000
	if len(a.events) == maxQueued {
		// The oldest goes; only a failing reporter (its store) lets them
		// pile up. They were never numbered: count them, for an
		// events.dropped event once the reporter takes events again.
		if a.unqueued == 0 {
			a.log.Warn("events dropped: the reporter has refused events for a while; the oldest go", "kind", a.events[0].Kind, "queued", maxQueued)
		}
		a.events = a.events[1:]
		a.unqueued++
	}
	a.events = append(a.events, e)
}

// publishEvents hands the queued events to the reporter in order, until
// it fails (they stay queued for the next try). pubMu keeps the order
// when the loop and event callers publish at once.
func (a *Agent) publishEvents(ctx context.Context) {
	if a.opts.Reporter == nil {
		return
	}
	a.pubMu.Lock()
	defer a.pubMu.Unlock()
	for {
		a.mu.Lock()
		if len(a.events) == 0 && a.unqueued > 0 && !a.pubFailing {
			a.events = append(a.events, Event{ID: NewEventID(), Time: a.opts.Clock().UTC(), Kind: EventReportsDropped,
				Message: fmt.Sprintf("%d events were dropped before they were numbered: the reporter refused events for a while (see the device log), and the agent holds at most 1000", a.unqueued)})
			a.unqueued = 0
		}
		if len(a.events) == 0 {
			a.mu.Unlock()
			return
		}
		e := a.events[0]
		a.mu.Unlock()
		if err := a.opts.Reporter.PublishEvent(ctx, e); err != nil {
			// The reporter fails only when its store does: a device-wide
			// fault, not this event's (it takes any event, cut if need be).
			if !a.pubFailing {
				a.pubFailing = true
				a.log.Warn("event not handed to the reporter; it and the events after it wait, and are tried again", "kind", e.Kind, "err", err)
			} else {
				a.log.Debug("event not published; will retry", "kind", e.Kind, "err", err)
			}
			signal(a.pending) // when an idle loop wakes depends on it
			return
		}
		if a.pubFailing {
			a.pubFailing = false
			a.log.Info("the reporter takes events again")
		}
		a.mu.Lock()
		a.events = a.events[1:]
		a.mu.Unlock()
	}
}

// report publishes queued events in order, then the status if it changed.
func (a *Agent) report(ctx context.Context) {
	if a.opts.Reporter == nil {
		a.mu.Lock()
		a.events = nil
		a.mu.Unlock()
		a.persistState()
		return
	}
	for _, m := range a.set.mods {
		m.m.ReportRefusals(time.Now()) // summaries of refusals held back
	}
	a.heldBack()
	a.publishEvents(ctx)
	a.publishJobStatuses(ctx) // after the events: whoever sees a status finds its events
	s, raw := a.snapshot()
	if a.opts.Report != nil {
		a.opts.Report(&s)
	}
	a.persistState()
	a.mu.Lock()
	same := string(raw) == string(a.lastSent) && time.Since(a.sentAt) < a.opts.Heartbeat
	a.mu.Unlock()
	if same {
		return
	}
	if err := a.opts.Reporter.PublishState(ctx, s); err != nil {
		a.mu.Lock()
		first := !a.stateFails
		a.stateFails = true
		a.mu.Unlock()
		level := slog.LevelDebug
		if first {
			level = slog.LevelWarn
		}
		a.log.Log(ctx, level, "status not published; will retry", "kind", "state report", "err", err)
		return
	}
	a.mu.Lock()
	a.lastSent, a.sentAt, a.stateFails = raw, time.Now(), false
	a.mu.Unlock()
}

// snapshot returns the status to report and its encoding without the time
// (to detect change).
func (a *Agent) snapshot() (Status, []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.status
	s.State = state.Canonical(a.current)
	s.Converged = a.converged
	s.Plan = copyPlan(a.plan)
	a.layerStatus(&s)
	s.Time = time.Time{}
	raw, _ := json.Marshal(s)
	s.Time = a.opts.Clock().UTC()
	a.status = s
	return s, raw
}

// maxEventText bounds the text of an event's message and of a status's
// error. They carry what modules say (their errors, their manifests' names)
// and what planning explains, and the whole report must fit the broker's
// payload limit: one report too big to send would hold up every report
// behind it.
const maxEventText = 8 << 10

// maxEventPath bounds an event's path: a target may name a key of any
// length.
const maxEventPath = 1 << 10

// clip cuts s to at most max bytes, at a UTF-8 boundary, with a marker
// that says how much was cut.
func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max - 40
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…(%d bytes cut)", s[:cut], len(s)-cut)
}

func pointers(ps []state.Pointer) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	sort.Strings(s)
	return fmt.Sprint(s)
}
