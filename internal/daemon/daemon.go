package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tern-iot/tern/boards"
	"github.com/tern-iot/tern/firmware/update"
	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/hal/gpiodev"
	"github.com/tern-iot/tern/hal/i2c"
	"github.com/tern-iot/tern/hal/i2cdev"
	"github.com/tern-iot/tern/hal/serial"
	"github.com/tern-iot/tern/hal/serialdev"
	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/internal/modfile"
	"github.com/tern-iot/tern/internal/sdnotify"
	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/internal/version"
	"github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/runtime/jobs"
	"github.com/tern-iot/tern/runtime/store"
	"github.com/tern-iot/tern/runtime/store/backend"
)

// Hardware is what the daemon drives. Tests and the testbench pass a
// simulated board they can probe; nil means: build it from the config.
type Hardware struct {
	GPIO   gpio.Lookup
	I2C    i2c.Lookup
	Serial serial.Opener
	// Dial is the board's network, as the broker connection uses it; nil:
	// the operating system's. The testbench cuts one agent's network here.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Clock is the board's wall clock; nil: time.Now. The testbench makes
	// it jump (see runtime.Options.Clock).
	Clock func() time.Time
	// ClockSynced says whether Clock is synchronised; nil: as clock_sync
	// in the configuration says (the kernel's NTP status by default).
	ClockSynced func() bool
	// CompileCommand is the child process that compiles new modules under
	// the module_limits (runtime.Options.CompileCommand); nil: in
	// process. With no Hardware at all, ternd runs its own binary
	// ("ternd compile-module").
	CompileCommand []string
}

// Run is ternd: it runs until ctx is done.
func Run(ctx context.Context, cfg Config, hw *Hardware, log *slog.Logger) error {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	for _, k := range cfg.Ignored {
		log.Warn("configuration key ignored: a newer ternd was rolled back here, and the key may be its", "key", k)
	}
	board, err := boards.Lookup(cfg.Board)
	if err != nil {
		return fmt.Errorf("ternd: %w", err)
	}
	for _, err := range grantProblems(cfg, board) {
		log.Warn("a module is granted hardware this board does not have; its calls to it will fail", "err", err)
	}
	var physics func(context.Context)
	closeBoard := func() error { return nil }
	if hw != nil && !cfg.Sim.IsZero() {
		return errors.New("ternd: the configuration has a sim section, but the caller passed its own hardware; attach the simulated chips to that hardware instead")
	}
	if hw == nil {
		if hw, physics, closeBoard, err = hardware(board, cfg.Sim); err != nil {
			return err
		}
		defer closeBoard()
		hw.CompileCommand = compileCommand(log)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("ternd: data directory: %w", err)
	}
	// The store opens while the modules' code is read and hashed: both
	// take a tenth of a start with the relay module, and boards have more
	// than one core.
	type opened struct {
		st  store.Store
		err error
	}
	opening := make(chan opened, 1)
	go func() {
		st, err := backend.OpenNamed(cfg.Store, filepath.Join(cfg.DataDir, "store"))
		opening <- opened{st, err}
	}()
	specs, specsErr := moduleSpecs(cfg, log)
	for i := range specs {
		specs[i] = specs[i].Hashed()
	}
	o := <-opening
	if o.err != nil {
		return fmt.Errorf("ternd: opening the store in %s: %w", cfg.DataDir, o.err)
	}
	st := o.st
	defer st.Close()
	if specsErr != nil {
		return specsErr
	}
	var dev *fleet.Device
	var reporter runtime.Reporter
	if cfg.Broker != "" || len(cfg.Brokers) > 0 {
		dev, err = fleet.NewDevice(fleet.DeviceOptions{
			Broker: cfg.Broker, Brokers: cfg.Brokers, TLS: cfg.TLS, Device: cfg.Device, Logger: log, Groups: cfg.Groups, Modules: moduleNames(cfg),
			Store: st, OutboxLimit: cfg.OutboxLimit, MaxReport: cfg.MaxReport,
			Username: cfg.BrokerUsername, Password: cfg.BrokerPassword,
			Topics:    fleet.Topics{Prefix: cfg.TopicPrefix, Fleet: cfg.Fleet},
			Dial:      hw.Dial,
			AgentArch: version.Arch(),
		})
		if err != nil {
			return fmt.Errorf("ternd: %w", err)
		}
		reporter = &settling{Reporter: dev}
	} else {
		log.Warn("no broker configured: running offline on the stored target")
	}
	trust, err := cfg.Trust()
	if err != nil {
		return fmt.Errorf("ternd: %w", err)
	}
	synced := hw.ClockSynced
	if synced == nil && cfg.ClockSync != "assume" {
		synced = clockSynced
	}
	storeName := cfg.Store
	if storeName == "" {
		storeName = backend.Default()
	}
	simBoard := "" // the board's model comes from the device tree, or the simulated board's name
	if board.Name == "sim" {
		simBoard = board.Name
	}
	obs := &observer{inv: newInventory("/", cfg.DataDir, simBoard, storeName, nil)}
	if dev != nil {
		obs.reconnects = dev.Reconnects
		obs.inv.outbox = func() int { _, n := dev.Outbox(); return int(n) }
	}
	var metricsListener net.Listener
	if cfg.Metrics.Listen != "" {
		if metricsListener, err = listenMetrics(cfg.Metrics.Listen); err != nil {
			return err
		}
		defer metricsListener.Close()
	}
	agent, err := runtime.New(ctx, runtime.Options{
		Store: st, GPIO: hw.GPIO, I2C: hw.I2C, Serial: hw.Serial, Modules: specs, Logger: log, Reporter: reporter,
		CacheDir: cfg.CacheDir, Strict: cfg.Strict, Trust: trust, Clock: hw.Clock, ClockSynced: synced, Facts: cfg.facts(board.Name),
		CallTimeout: time.Duration(cfg.ModuleLimits.CallTimeout), SensorTimeout: time.Duration(cfg.ModuleLimits.SensorTimeout),
		ModuleMemoryMiB: cfg.ModuleLimits.MemoryMiB, SharedGrants: cfg.SharedGrants,
		CompileCommand: hw.CompileCommand, CompileTimeout: time.Duration(cfg.ModuleLimits.CompileTimeout), CompileMemoryMiB: cfg.ModuleLimits.CompileMemoryMiB,
		AllOrNothing: cfg.AllOrNothing, Report: obs.report,
	})
	if err != nil {
		return err
	}
	obs.agent = agent
	defer agent.Close(context.WithoutCancel(ctx))
	if reporter == nil {
		debug.FreeOSMemory() // see settling; offline, no report comes
	}
	comb, err := newCombiner(st, trust, cfg.Device, cfg.Groups)
	if err != nil {
		return err
	}
	rels, err := fleet.NewReleases(st, trust)
	if err != nil {
		return err
	}
	rels.CheckCode = func(env fleet.ReleaseEnvelope) error { return modfile.NamedAs(env.Wasm, env.Module) }
	log.Info("ternd started", "version", version.String("ternd"), "device", cfg.Device, "fleet", cfg.Fleet, "board", board.Name, "store", storeName)

	up, ust := newUpdater(cfg, trust, dev, log)
	healthy := func() error {
		if dev != nil && !dev.Connected() {
			return errors.New("not connected to the broker")
		}
		if agent.Steps() == 0 {
			return errors.New("the agent has not finished a step (sense, plan, run) yet")
		}
		if b := agent.Busy(); b > watchdogStall {
			return fmt.Errorf("the agent loop has been in one step for %v", b.Round(time.Second))
		}
		if s := agent.Status(); s.Phase != runtime.PhaseIdle {
			return fmt.Errorf("the agent is %s, not converged: %s", s.Phase, s.Error)
		}
		return nil
	}

	// What the fleet has not heard of the last update goes out first,
	// before anything else may touch the update state.
	onTrial := up.dir.OnTrial(ust, up.self)
	if !onTrial {
		up.settle(ust)
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	var offered atomic.Uint64 // targets the fleet offered (see bootGrace)
	if dev != nil {
		windows, deferMax, _ := cfg.UpdatePolicy.parse() // Validate checked it
		clock := hw.Clock
		if clock == nil {
			clock = time.Now
		}
		g, err := newGate(gate{
			device: cfg.Device, trust: trust, store: st, log: log, clock: clock, synced: synced,
			conn: dev.Connection, busy: agent.BusyReason, report: agent.SetRollouts,
			windows: windows, defMax: deferMax,
		})
		if err != nil {
			return err
		}
		wg.Go(func() { errc <- dev.Run(ctx) })
		wg.Go(func() { feed(ctx, cancel, dev, comb, rels, up, agent, trust, g, &offered, log) })
		wg.Go(func() { dryRuns(ctx, dev, st, cfg.Device, cfg.Groups, trust, agent, log) })
	}
	wg.Go(func() {
		if _, held := agent.Target(); dev != nil && held > 0 {
			bootGrace(ctx, cfg.bootGrace(), dev, &offered, log)
		}
		errc <- agent.Run(ctx)
	})
	if physics != nil {
		wg.Go(func() { physics(ctx) })
	}
	if onTrial {
		wg.Go(func() {
			if err := up.trial(ctx, ust, healthy); err != nil {
				cancel(err)
			}
		})
	}
	wg.Go(func() { watchdog(ctx, sdnotify.WatchdogInterval(), agent.Busy, log) })
	if cfg.Metrics.Textfile != "" {
		wg.Go(func() { obs.writeTextfile(ctx, cfg.Metrics.Textfile, cfg.Metrics.interval(), log) })
	}
	if metricsListener != nil {
		wg.Go(func() { obs.serveMetrics(ctx, metricsListener, log) })
	}
	if err := sdnotify.Notify(sdnotify.Ready); err != nil {
		log.Warn("cannot tell systemd ternd is ready", "err", err)
	}
	<-ctx.Done()
	sdnotify.Notify(sdnotify.Stopping)
	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	if cause := context.Cause(ctx); errors.Is(cause, ErrRestart) {
		errs = append(errs, cause)
	}
	return errors.Join(errs...)
}

// settling returns the garbage of ternd's start to the system once, when
// the agent reports its first status (its first step, which converges a
// stored target, is done). Loading the modules (decoding them, compiling
// them too when the compile child could not run), the first plan and
// connecting leave tens of MiB the heap would otherwise keep for hours at
// the few KiB a second an idle agent allocates; freeing them before the
// first step would delay it (RATIONALE.md, "Memory after the start").
type settling struct {
	runtime.Reporter
	once sync.Once
}

// PublishJobStatus passes job statuses on to the fleet device.
func (s *settling) PublishJobStatus(ctx context.Context, st runtime.JobStatus) error {
	if r, ok := s.Reporter.(runtime.JobReporter); ok {
		return r.PublishJobStatus(ctx, st)
	}
	return nil
}

func (s *settling) PublishState(ctx context.Context, st runtime.Status) error {
	err := s.Reporter.PublishState(ctx, st)
	s.once.Do(debug.FreeOSMemory)
	return err
}

// bootQuiet is how long, once subscribed, no target may arrive before the
// boot grace ends early: the broker sends retained messages right after
// the subscription's acknowledgement, back to back.
const bootQuiet = 300 * time.Millisecond

// firstAttempter is the part of the fleet device the boot grace needs.
type firstAttempter interface {
	// FirstAttempt is closed when the first connection attempt ended:
	// connected and subscribed, or failed.
	FirstAttempt() <-chan struct{}
	Connected() bool
}

// bootGrace holds the agent back, at start, for the targets retained on
// the broker, so that it acts first on the newest one rather than on the
// older one it stored (a relay switched on and off again at boot). It
// returns at once when the first connection attempt fails (offline: act
// on the stored target), once no target arrived for bootQuiet after
// subscribing, or after grace, whichever is first. offered counts the
// targets the fleet offered so far.
func bootGrace(ctx context.Context, grace time.Duration, dev firstAttempter, offered *atomic.Uint64, log *slog.Logger) {
	if grace <= 0 {
		return
	}
	start := time.Now()
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	select {
	case <-ctx.Done():
		return
	case <-deadline.C:
		log.Info("boot grace over before the broker answered; acting on the stored target", "grace", grace)
		return
	case <-dev.FirstAttempt():
	}
	if !dev.Connected() {
		log.Info("broker unreachable at start; acting on the stored target at once")
		return
	}
	quiet := time.NewTicker(bootQuiet)
	defer quiet.Stop()
	for seen := offered.Load(); ; {
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			log.Info("boot grace over; acting on the targets received so far", "grace", grace)
			return
		case <-quiet.C:
		}
		if now := offered.Load(); now != seen {
			seen = now
			continue
		}
		log.Debug("retained targets received; starting the agent", "waited", time.Since(start).Round(time.Millisecond))
		return
	}
}

// watchdogStall is how long the agent loop may stay in one step before
// ternd stops feeding systemd's watchdog (and fails its update health
// check): far longer than any job's deadline allows.
const watchdogStall = 5 * time.Minute

// watchdog pings systemd's watchdog every interval/2 while the agent loop
// is not stuck in a step (busy says how long it has been in one); a hung
// loop stops the pings and systemd restarts ternd. interval 0: no
// watchdog (not run by systemd, or no WatchdogSec=).
func watchdog(ctx context.Context, interval time.Duration, busy func() time.Duration, log *slog.Logger) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	pingWhileHealthy(ctx, t.C, busy, log)
}

// pingWhileHealthy is watchdog's loop, ticked by ticks.
func pingWhileHealthy(ctx context.Context, ticks <-chan time.Time, busy func() time.Duration, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		}
		msg := sdnotify.Watchdog
		if b := busy(); b > watchdogStall {
			msg = fmt.Sprintf("STATUS=agent loop stuck in one step for %v; watchdog pings stopped", b.Round(time.Second))
			log.Error("agent loop stuck; not feeding the watchdog, systemd will restart ternd", "busy", b)
		}
		if err := sdnotify.Notify(msg); err != nil {
			log.Warn("systemd watchdog", "err", err)
		}
	}
}

func newUpdater(cfg Config, trust signing.Trust, dev *fleet.Device, log *slog.Logger) (*updater, update.State) {
	self, err := os.Executable()
	if err != nil {
		log.Warn("cannot find the running binary", "err", err)
	}
	up := &updater{
		dir: AgentDir(cfg), self: self, arch: version.Arch(), trust: trust, health: time.Duration(cfg.UpdateHealthTimeout), log: log,
		publish: func(e runtime.Event) {
			if dev == nil {
				return
			}
			if err := dev.PublishEvent(context.Background(), e); err != nil {
				log.Warn("agent update event not stored", "kind", e.Kind, "err", err)
			}
		},
	}
	st, err := up.dir.Load()
	if err != nil {
		log.Warn("agent update state", "err", err)
	}
	return up, st
}

// feed hands targets and module releases from the fleet to the agent.
func feed(ctx context.Context, stop context.CancelCauseFunc, dev *fleet.Device, comb *combiner, rels *fleet.Releases, up *updater, a *runtime.Agent, trust signing.Trust, g *gate, offered *atomic.Uint64, log *slog.Logger) {
	// Module releases install one at a time, in the order they came, on
	// their own goroutine: compiling one may take up to its bound, and
	// targets must reach the agent meanwhile.
	releases := make(chan fleet.ReleaseEnvelope, 16)
	installed := newOutcomes() // of releases a rollout governs, for the gate
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(releases)
	wg.Go(func() {
		for env := range releases {
			err := release(ctx, env, rels, a, log)
			if env.Rollout != nil {
				installed.put(env.Module, env.Version, err)
			}
		}
	})
	sendRelease := func(env fleet.ReleaseEnvelope) bool {
		select {
		case releases <- env:
			return true
		case <-ctx.Done():
			return false
		}
	}
	applyTarget := func(env fleet.ScopedTarget) error {
		version, doc, changed, rebased, err := comb.offer(env)
		offered.Add(1)
		switch {
		case err != nil:
			log.Warn("target refused", "scope", env.Scope, "version", env.Version, "err", err)
			a.Refused(env.Version, err)
		case !changed:
			log.Debug("target redelivered", "scope", env.Scope, "version", env.Version)
		case rebased:
			if err = a.SetLayeredTarget(version, doc, comb.agentLayers(log), fmt.Sprintf("%s version %d replaces version %d (tern push --replaces)", env.Scope, env.Version, env.Replaces)); err != nil {
				log.Warn("rebase refused", "version", version, "err", err)
			} else {
				log.Warn("target rebased", "scope", env.Scope, "version", env.Version, "replaces", env.Replaces, "combined_version", version)
			}
		default:
			if err = a.SetLayeredTarget(version, doc, comb.agentLayers(log), ""); err != nil {
				log.Warn("target refused", "version", version, "err", err)
			} else {
				log.Info("target received", "scope", env.Scope, "version", env.Version, "combined_version", version)
			}
		}
		return err
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	step := func() {
		timer.Stop()
		if next := g.step(); !next.IsZero() {
			timer.Reset(max(next.Sub(g.clock()), time.Millisecond))
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			step()
		case <-dev.RolloutsWaiting():
			for _, c := range dev.TakeRolloutControls() {
				g.control(c)
			}
			step()
		case <-installed.wake:
			step()
		case env, ok := <-dev.Targets():
			if !ok {
				return
			}
			if env.Rollout == nil {
				if err := applyTarget(env); err == nil {
					g.supersede("target/"+env.Scope, fmt.Sprintf("target %s version %d", env.Scope, env.Version))
				}
				continue
			}
			_, fresh, err := comb.admit(env)
			if err != nil || !fresh {
				applyTarget(env) // refused or redelivered, as without a rollout
				continue
			}
			g.hold(targetGated(env, a, applyTarget))
			step()
		case env, ok := <-dev.Releases():
			if !ok {
				return
			}
			if env.Rollout != nil && g.fetched(env) {
				if !sendRelease(env) {
					return
				}
				continue
			}
			if env.Rollout != nil {
				if fresh, err := rels.Check(env); err == nil && fresh {
					g.hold(releaseGated(env, a, installed, sendRelease, dev.FetchRelease))
					step()
					continue
				}
			}
			if env.Rollout == nil {
				if fresh, err := rels.Check(env); err == nil && fresh {
					g.supersede("module/"+env.Module, fmt.Sprintf("module %s version %d", env.Module, env.Version))
				}
			}
			if env.Wasm == nil {
				// A manifest a rollout governs that Check refused or
				// holds already: nothing to fetch.
				if _, err := rels.Check(env); err != nil {
					log.Warn("module release refused", "module", env.Module, "version", env.Version, "err", err)
					a.ModuleRefused(env.Module, err)
				}
				continue
			}
			if !sendRelease(env) {
				return
			}
		case <-dev.JobsWaiting():
			for _, j := range dev.TakeJobs() {
				offerJob(j, trust, a, log)
			}
		case r, ok := <-dev.AgentReleases():
			if !ok {
				return
			}
			if r.Rollout != nil {
				switch fresh, tried := up.fresh(r); {
				case fresh:
					g.hold(agentGated(r, up, func() error {
						if err := up.apply(ctx, r); err != nil {
							stop(err) // ErrRestart: into the new binary
						}
						return nil
					}))
					step()
					continue
				case tried && g.reports(r.Rollout.ID):
					g.hold(agentOutcome(r, up)) // after the restart: how it went
					step()
					continue
				}
			}
			if err := up.apply(ctx, r); err != nil {
				stop(err)
				return
			}
		case r, ok := <-dev.Refusals():
			if !ok {
				return
			}
			// The device logged the refusal already; here it becomes an
			// event, in the operator's words (no Go package prefix).
			why := strings.TrimPrefix(r.Err.Error(), "fleet: ")
			if r.Agent {
				up.event(EventUpdateRefused, "%s: %s; the running binary stays", r.Topic, why)
			} else if r.Job != "" {
				a.JobRefused(r.Job, "", "", fmt.Errorf("%s: %s", r.Topic, why))
			} else if r.Module != "" {
				a.ModuleRefused(r.Module, fmt.Errorf("%s: %s", r.Topic, why))
			} else {
				a.Refused(0, fmt.Errorf("%s: %s", r.Topic, why))
			}
		}
	}
}

// offerJob hands a job from the fleet to the agent, once its signature
// verifies (with trusted_keys), and logs what became of it.
func offerJob(j fleet.ScopedJob, trust signing.Trust, a *runtime.Agent, log *slog.Logger) {
	// Every connection brings every retained job again: a version held
	// already is dropped before its signature is checked, and so is a new
	// job when the agent holds all it may (OfferJob says so, in a
	// rate-bound event).
	switch err := a.WantsJob(j.Scope, j.Version); {
	case errors.Is(err, jobs.ErrOlder):
		log.Debug("job redelivered", "job", j.ID, "scope", j.Scope, "version", j.Version)
		return
	case errors.Is(err, jobs.ErrFull):
		log.Debug("job refused", "job", j.ID, "scope", j.Scope, "version", j.Version, "err", a.OfferJob(jobs.Job{Scope: j.Scope, Version: j.Version, Module: j.Module, Job: j.Job, Spec: j.Spec()}))
		return
	}
	if len(trust) > 0 {
		if err := j.Verify(j.Scope, trust); err != nil {
			log.Warn("job refused", "job", j.ID, "scope", j.Scope, "version", j.Version, "err", err)
			a.JobRefused(j.ID, j.Module, j.Job, fmt.Errorf("%s version %d refused: %w", j.Scope, j.Version, err))
			return
		}
	}
	err := a.OfferJob(jobs.Job{Scope: j.Scope, Version: j.Version, Module: j.Module, Job: j.Job, Args: j.Args,
		Spec: j.Spec(), RetryInterrupted: j.RetryInterrupted, Canceled: j.Canceled})
	switch {
	case errors.Is(err, jobs.ErrOlder):
		log.Debug("job redelivered", "job", j.ID, "scope", j.Scope, "version", j.Version)
	case err != nil:
		log.Warn("job refused", "job", j.ID, "scope", j.Scope, "version", j.Version, "err", err)
	default:
		log.Info("job received", "job", j.ID, "scope", j.Scope, "version", j.Version, "module", j.Module, "command", j.Job, "canceled", j.Canceled)
	}
}

// release installs a module release that passes rels' checks, through the
// agent's module lifecycle (signature in the code, compile, swap, rollback).
func release(ctx context.Context, env fleet.ReleaseEnvelope, rels *fleet.Releases, a *runtime.Agent, log *slog.Logger) error {
	fresh, err := rels.Check(env)
	switch {
	case err != nil:
		log.Warn("module release refused", "module", env.Module, "version", env.Version, "err", err)
		a.ModuleRefused(env.Module, err)
		return err
	case !fresh:
		log.Debug("module release redelivered", "module", env.Module, "version", env.Version)
		return nil
	}
	log.Info("module release received", "module", env.Module, "version", env.Version, "module_version", env.ModuleVersion, "size", env.Size)
	err = a.InstallModule(ctx, env.Module, env.Wasm)
	// The release's bytes, and its compile's garbage when in process, go
	// back to the system once it is recorded below.
	defer debug.FreeOSMemory()
	if err != nil && ctx.Err() != nil {
		return err // stopping: cut short, so tried again at the next start
	}
	// Recorded whatever the outcome, and even if a stop arrived meanwhile:
	// an installed release left unrecorded would let an older release,
	// replayed later, pass as newer than the last one recorded.
	if aerr := rels.Accept(env.Module, env.Version); aerr != nil {
		log.Error("module release version not stored; it may be tried again after a restart", "module", env.Module, "err", aerr)
	}
	if err != nil {
		log.Warn("module release not installed", "module", env.Module, "version", env.Version, "err", err)
		return err
	}
	log.Info("module release installed", "module", env.Module, "version", env.Version)
	return nil
}

func moduleNames(cfg Config) []string {
	names := make([]string, len(cfg.Modules))
	for i, m := range cfg.Modules {
		names[i] = m.Name
	}
	return names
}

// hardware builds the board's backends. On the sim board it wires what
// the sim section lists (simHardware); without a sim section its bus is
// empty, and the testbench attaches simulated chips.
func hardware(b boards.Board, s sim.BoardSpec) (*Hardware, func(context.Context), func() error, error) {
	if b.Name == "sim" {
		return simHardware(b, s)
	}
	chip, err := gpiodev.Open(b.GPIOChip, b.GPIOLabel, func(name string) (int, error) {
		p, err := b.Line(name)
		return p.Line, err
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("ternd: board %s: %w", b.Name, err)
	}
	ports := map[string]string{}
	for _, it := range b.Interfaces {
		if it.Kind == "serial" {
			ports[it.Name] = it.Device
		}
	}
	return &Hardware{GPIO: chip, I2C: &i2cdev.Buses{}, Serial: serialdev.Opener{Devices: ports}}, nil, func() error { return nil }, nil
}

// compileCommand is how ternd compiles a new module: in a child process of
// its own binary ("ternd compile-module"), so that compiling a hostile
// module cannot take the agent down. Only a binary named ternd serves
// that command; another program running the daemon (a test) passes
// Hardware.CompileCommand, or compiles in process.
func compileCommand(log *slog.Logger) []string {
	exe, err := os.Executable()
	if err != nil || !strings.HasPrefix(filepath.Base(exe), "ternd") {
		log.Warn("compiling modules in the agent's process, bounded only by the pre-decode checks: not running as ternd", "binary", exe, "err", err)
		return nil
	}
	return []string{exe, "compile-module"}
}

func moduleSpecs(cfg Config, log *slog.Logger) ([]runtime.ModuleSpec, error) {
	var specs []runtime.ModuleSpec
	for _, m := range cfg.Modules {
		conf, err := moduleConfigJSON(m.Config)
		if err != nil {
			return nil, fmt.Errorf("ternd: module %s: config: %w", m.Name, err)
		}
		spec := runtime.ModuleSpec{Name: m.Name, Config: conf, Expand: m.Expand, Grants: m.Grants}
		if m.Path != "" {
			wasm, err := os.ReadFile(m.Path)
			switch {
			case err == nil:
				spec.Wasm = wasm
			case errors.Is(err, os.ErrNotExist):
				log.Warn("module file missing; using the installed version", "module", m.Name, "path", m.Path)
			default:
				return nil, fmt.Errorf("ternd: module %s: %w", m.Name, err)
			}
		}
		specs = append(specs, spec)
	}
	return specs, nil
}
