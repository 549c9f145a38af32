package runtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/tern-iot/tern/internal/modfile"
	"github.com/tern-iot/tern/runtime/internal/wasmhost"
	"github.com/tern-iot/tern/runtime/plan"
	"github.com/tern-iot/tern/runtime/state"
	"github.com/tern-iot/tern/runtime/store"
	"github.com/tern-iot/tern/sdk/abi"
)

// module is a loaded module and its sensors.
type module struct {
	name    string
	hash    string     // sha256 of its code, hex
	spec    ModuleSpec // as configured: grants, config, expand
	m       *wasmhost.Module
	jobs    []*plan.Job
	sensors []sensor
}

type sensor struct {
	spec abi.SensorSpec
	path state.Pointer
}

// modset is a set of loaded modules and the jobs they offer. The agent
// and the offline Planner both use one.
type modset struct {
	host *wasmhost.Host
	log  *slog.Logger
	mods []*module
	jobs []*plan.Job
}

// add compiles wasm and registers the module's jobs and sensors. spec.Name,
// if not empty, must be the module's own; spec.Wasm is not used.
func (ms *modset) add(ctx context.Context, spec ModuleSpec, wasm []byte, hash string) (*module, error) {
	mod, err := ms.compile(ctx, spec, wasm, hash)
	if err != nil {
		return nil, err
	}
	if _, err := ms.module(mod.name); err == nil {
		mod.m.Close(ctx)
		return nil, fmt.Errorf("runtime: module %s is loaded twice: name it once", mod.name)
	}
	if err := ms.checkSensors(mod); err != nil {
		mod.m.Close(ctx)
		return nil, err
	}
	ms.put(mod)
	return mod, nil
}

// compile loads wasm and reads its jobs and sensors, without registering
// them. spec.Name, if not empty, must be the module's own. hash is
// codeHash(wasm), or empty when the caller has not computed it.
func (ms *modset) compile(ctx context.Context, spec ModuleSpec, wasm []byte, hash string) (*module, error) {
	name := spec.Name
	// Code that says in its manifest section that it is another module is
	// refused before any of it runs with this module's grants.
	if sec, ok, err := modfile.Manifest(wasm); err == nil && ok && name != "" && sec.Name != name {
		return nil, fmt.Errorf("runtime: code given as module %q calls itself %q in its manifest: release or configure it under its own name", name, sec.Name)
	}
	var m *wasmhost.Module
	var err error
	if sum, ok := parseCodeHash(hash); ok {
		m, err = ms.host.LoadHashed(ctx, wasm, sum, spec.Grants, spec.Config)
	} else {
		m, err = ms.host.Load(ctx, wasm, spec.Grants, spec.Config)
	}
	if err != nil {
		return nil, fmt.Errorf("runtime: module %s: %w", name, err)
	}
	man := m.Manifest()
	if name != "" && name != man.Name {
		m.Close(ctx)
		return nil, fmt.Errorf("runtime: code given as module %q calls itself %q: release or configure it under its own name", name, man.Name)
	}
	spec.Name = man.Name
	spec.withoutCode()
	mod := &module{name: man.Name, spec: spec, m: m}
	var jobs []*plan.Job
	for _, js := range man.Jobs {
		if js.IsCommand() {
			continue // run by fleet jobs, never planned (jobrun.go)
		}
		j, err := plan.NewJob(man.Name, js)
		if err != nil {
			m.Close(ctx)
			return nil, err
		}
		jobs = append(jobs, j)
	}
	for _, ss := range man.Sensors {
		p, err := state.ParsePointer(ss.Path)
		if err != nil {
			m.Close(ctx)
			return nil, fmt.Errorf("runtime: module %s: sensor %s: %w", man.Name, ss.Name, err)
		}
		mod.sensors = append(mod.sensors, sensor{spec: ss, path: p})
	}
	mod.jobs = jobs
	return mod, nil
}

// put registers a compiled module's jobs and sensors.
func (ms *modset) put(mod *module) {
	ms.jobs = append(ms.jobs, mod.jobs...)
	ms.mods = append(ms.mods, mod)
	man := mod.m.Manifest()
	attrs := []any{"module", man.Name, "version", man.Version, "compile", mod.m.CompileTime.Round(time.Millisecond)}
	if c := mod.m.Compile; c.MaxRSS > 0 { // compiled in the child process
		attrs = append(attrs, "compile_child", c.Wall.Round(time.Millisecond), "compile_child_rss_mib", c.MaxRSS>>20)
	}
	ms.log.Info("module loaded", attrs...)
}

// remove takes a module and its jobs out of the set and closes it.
func (ms *modset) remove(ctx context.Context, name string) {
	for i, m := range ms.mods {
		if m.name == name {
			ms.mods = append(ms.mods[:i:i], ms.mods[i+1:]...)
			m.m.Close(ctx)
		}
	}
	jobs := ms.jobs[:0:0]
	for _, j := range ms.jobs {
		if j.Module != name {
			jobs = append(jobs, j)
		}
	}
	ms.jobs = jobs
}

func (ms *modset) module(name string) (*module, error) {
	for _, m := range ms.mods {
		if m.name == name {
			return m, nil
		}
	}
	return nil, fmt.Errorf("runtime: no module %q", name)
}

// load installs spec's code in the store (or takes the installed code if
// spec has none), compiles it and registers its jobs and sensors. The code
// is hashed once here: on a board without SHA instructions hashing a Go
// module takes tens of milliseconds (RATIONALE.md, "Hashed once per
// layer").
func (a *Agent) load(ctx context.Context, spec ModuleSpec) error {
	wasm, h := spec.Wasm, ""
	if wasm != nil {
		h = spec.codeHash()
	}
	if wasm != nil && a.wasRolledBack(spec.Name, h) {
		msg := "the configured code was rolled back after it kept failing; running the installed version until new code is configured"
		a.log.Warn(msg, "module", spec.Name)
		a.event(Event{Kind: EventModuleError, Module: spec.Name, Message: msg})
		wasm = nil
	}
	if wasm != nil && a.configuredBefore(spec.Name, h) {
		// Installed at an earlier start; a release or a rollback may have
		// replaced it since, and what they installed is newer word than a
		// configuration file that did not change. When the active code is
		// the configured code, the file's bytes are it (same hash): the
		// stored copy is not read, which would cost a copy of the module
		// in memory and its pages of the store's value log.
		active, err := a.opts.Store.Get(moduleActiveKey(spec.Name))
		switch {
		case err == nil && string(active) == h:
			spec.withoutCode()
		case err == nil:
			if inst, ih, err := a.installed(spec.Name); err == nil {
				a.log.Info("running the installed version, which replaced the configured code since it was installed", "module", spec.Name)
				wasm, h = inst, ih
				spec.withoutCode()
			}
		}
	}
	fresh := spec.Wasm != nil && wasm != nil
	spec.withoutCode() // a.specs keeps grants and config; the code is in the store
	if wasm == nil {
		var err error
		if wasm, h, err = a.installed(spec.Name); err != nil {
			return err
		}
	}
	if err := a.verify(spec.Name, wasm); err != nil {
		return err
	}
	mod, err := a.set.add(ctx, spec, wasm, h)
	if err != nil {
		return err
	}
	mod.hash = h
	a.specs[mod.name] = spec
	if fresh {
		if err := a.install(mod.name, h, wasm); err != nil {
			return err
		}
		if err := a.opts.Store.Put(moduleConfiguredKey(mod.name), []byte(h)); err != nil {
			return fmt.Errorf("runtime: installing module %s: %w", mod.name, err)
		}
	}
	return nil
}

// configuredBefore reports whether the code hashed h is the configured
// code that was installed at an earlier start.
func (a *Agent) configuredBefore(name, h string) bool {
	c, err := a.opts.Store.Get(moduleConfiguredKey(name))
	return err == nil && string(c) == h
}

// verify checks a module's signature before anything else is done with
// it. With no trusted keys configured, unsigned modules pass with a warning.
func (a *Agent) verify(name string, wasm []byte) error {
	if len(a.opts.Trust) == 0 {
		a.log.Warn("module accepted without a signature check: no trusted keys are configured (trusted_keys in ternd.yaml)", "module", name)
		return nil
	}
	key, sum, err := modfile.Verify(wasm, a.opts.Trust)
	if err != nil {
		return fmt.Errorf("runtime: module %s refused: %w", name, err)
	}
	a.log.Info("module signature verified", "module", name, "key", key, "sha256", sum)
	return nil
}

// install stores a module's code, hashed h, and marks it active. The
// version it replaces is kept as the one to roll back to.
func (a *Agent) install(name, h string, wasm []byte) error {
	if err := a.storeCode(name, h, wasm); err != nil {
		return err
	}
	return a.activate(name, h)
}

// storeCode stores a module's code under its hash h, not yet active.
func (a *Agent) storeCode(name, h string, wasm []byte) error {
	if err := a.opts.Store.Put(moduleCodeKey(name, h), wasm); err != nil {
		return fmt.Errorf("runtime: installing module %s: %w", name, err)
	}
	return nil
}

// activate makes the stored code hashed h the active version, keeping the
// one it replaces as the version to roll back to.
func (a *Agent) activate(name, h string) error {
	if old, err := a.opts.Store.Get(moduleActiveKey(name)); err == nil && string(old) != h {
		if err := a.opts.Store.Put(modulePreviousKey(name), old); err != nil {
			return fmt.Errorf("runtime: installing module %s: %w", name, err)
		}
	}
	if err := a.opts.Store.Put(moduleActiveKey(name), []byte(h)); err != nil {
		return fmt.Errorf("runtime: activating module %s: %w", name, err)
	}
	return nil
}

func codeHash(wasm []byte) string {
	sum := sha256.Sum256(wasm)
	return hex.EncodeToString(sum[:])
}

// parseCodeHash is the inverse of codeHash; false for anything else.
func parseCodeHash(h string) (sum [sha256.Size]byte, ok bool) {
	if len(h) != 2*sha256.Size {
		return sum, false
	}
	_, err := hex.Decode(sum[:], []byte(h))
	return sum, err == nil
}

// installed returns the active code of a module installed earlier, and
// its hash.
func (a *Agent) installed(name string) ([]byte, string, error) {
	h, err := a.opts.Store.Get(moduleActiveKey(name))
	if errors.Is(err, store.ErrNotFound) {
		return nil, "", fmt.Errorf("runtime: module %s has no code configured and none installed: give its .wasm path in the configuration", name)
	}
	if err != nil {
		return nil, "", fmt.Errorf("runtime: module %s: %w", name, err)
	}
	wasm, err := a.opts.Store.Get(moduleCodeKey(name, string(h)))
	if err != nil {
		return nil, "", fmt.Errorf("runtime: module %s: installed code %s: %w", name, h, err)
	}
	if codeHash(wasm) != string(h) {
		return nil, "", fmt.Errorf("runtime: module %s: installed code does not match its hash %s: reinstall it", name, h)
	}
	return wasm, string(h), nil
}

// senseInterval is how often the loop runs: the fastest sensor's interval.
func (a *Agent) senseInterval() time.Duration {
	d := time.Second
	first := true
	for _, m := range a.set.mods {
		for _, s := range m.sensors {
			if iv := time.Duration(s.spec.IntervalMS) * time.Millisecond; first || iv < d {
				d, first = iv, false
			}
		}
	}
	return max(d, 10*time.Millisecond)
}

// sense runs each module's sensors and writes what they report into the
// current state. Modules sense in parallel, each in its own round (its
// sensors one after another); sense waits for the rounds it started for
// at most the sensing interval. A round still running then (a slow or
// hung sensor, up to its deadline) goes on alone and writes when it ends,
// and its module is not sensed again until it has: one module's sensor
// never holds up the others, nor planning.
func (a *Agent) sense(ctx context.Context) error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for _, m := range a.set.mods {
		if len(m.sensors) == 0 {
			continue
		}
		a.mu.Lock()
		busy := a.sensing[m.name]
		if !busy {
			a.sensing[m.name] = true
		}
		a.mu.Unlock()
		if busy {
			continue
		}
		wg.Add(1)
		a.rounds.Add(1)
		go func() {
			defer a.rounds.Done()
			defer wg.Done()
			err := a.senseModule(ctx, m)
			a.mu.Lock()
			delete(a.sensing, m.name)
			a.mu.Unlock()
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(a.senseInterval())
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-ctx.Done():
	}
	mu.Lock()
	defer mu.Unlock()
	return errors.Join(errs...)
}

// maxSensorValue bounds the JSON one sensor may report: what sensors report
// makes the state, and the state goes into every state report.
const maxSensorValue = 64 << 10

// senseModule calls a module's sensors in turn.
func (a *Agent) senseModule(ctx context.Context, m *module) error {
	var errs []error
	for _, s := range m.sensors {
		raw, err := m.m.Call(ctx, wasmhost.PhaseSense, "sense", abi.Call{Job: s.spec.Name, Path: s.path.String()})
		a.moduleOutcome(m.name, "sense", err)
		if errors.Is(err, wasmhost.ErrCall) {
			a.event(Event{Kind: EventModuleError, Module: m.name, Job: s.spec.Name, Path: s.path.String(), Message: err.Error()})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("sensor %s.%s: %w", m.name, s.spec.Name, err))
			continue
		}
		if len(raw) > maxSensorValue {
			err := fmt.Errorf("sensor %s reported %d bytes, more than the %d a sensor may (its value goes into every state report)", s.spec.Name, len(raw), maxSensorValue)
			a.event(Event{Kind: EventModuleError, Module: m.name, Job: s.spec.Name, Path: s.path.String(), Message: err.Error()})
			errs = append(errs, err)
			continue
		}
		v, err := state.Parse(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("sensor %s.%s: %w", m.name, s.spec.Name, err))
			continue
		}
		if err := (live{a}).Apply(s.path, v); err != nil {
			errs = append(errs, fmt.Errorf("sensor %s.%s: %w", m.name, s.spec.Name, err))
		}
	}
	return errors.Join(errs...)
}

// evaluator answers the planner's and executor's questions by calling the
// modules: tern_try in the planning phase (no hardware), tern_run in the run
// phase.
type evaluator struct {
	mods  func(name string) (*module, error)
	event func(Event) // nil: misbehaviour is only returned
	// outcome hears how every call into a module went; nil: nobody.
	outcome func(module, export string, err error)
}

func (e evaluator) done(module, export string, err error) {
	if e.outcome != nil {
		e.outcome(module, export, err)
	}
}

func (e evaluator) call(ctx context.Context, j *plan.Job, phase wasmhost.Phase, export string, c abi.Call) (json.RawMessage, error) {
	m, err := e.mods(j.Module)
	if err != nil {
		return nil, err
	}
	raw, err := m.m.Call(ctx, phase, export, c)
	e.misbehaved(j, c, err)
	e.done(j.Module, export, err)
	return raw, err
}

// misbehaved reports a module's misbehaviour (a trap, a deadline, a
// malformed answer) as an event.
func (e evaluator) misbehaved(j *plan.Job, c abi.Call, err error) {
	if err != nil && errors.Is(err, wasmhost.ErrCall) && e.event != nil {
		e.event(Event{Kind: EventModuleError, Module: j.Module, Job: j.Spec.Name, Path: c.Path, Message: err.Error()})
	}
}

func (e evaluator) Try(ctx context.Context, j *plan.Job, c abi.Call, st plan.Reader) (plan.Result, error) {
	m, err := e.mods(j.Module)
	if err != nil {
		return plan.Result{}, err
	}
	if st != nil {
		ctx = wasmhost.WithState(ctx, st)
	}
	t, err := m.m.Try(ctx, c)
	e.done(j.Module, "try", err)
	if err != nil {
		e.misbehaved(j, c, err)
		return plan.Result{}, err
	}
	r, err := plan.DecodeTry(t)
	if err != nil {
		return plan.Result{}, fmt.Errorf("%s: %w", j.Name(), err)
	}
	return r, nil
}

func (e evaluator) Run(ctx context.Context, j *plan.Job, c abi.Call, st plan.Reader) error {
	if st != nil {
		ctx = wasmhost.WithState(ctx, st)
	}
	_, err := e.call(ctx, j, wasmhost.PhaseRun, "run", c)
	return err
}

// live is the agent's current state as the executor sees it.
type live struct{ a *Agent }

func (l live) Get(p state.Pointer) (any, bool) {
	l.a.mu.Lock()
	defer l.a.mu.Unlock()
	v, ok := state.Get(l.a.current, p)
	return state.Clone(v), ok
}

func (l live) Apply(p state.Pointer, v any) error {
	l.a.mu.Lock()
	defer l.a.mu.Unlock()
	next, err := state.Put(l.a.current, p, v)
	if err != nil {
		return err
	}
	l.a.current = next
	return nil
}

// dropCode lets go of the configured modules' bytes once New has loaded
// them: they are compiled and in the store, and nothing reads them again
// (InstallModule and rollbacks take grants and config from the
// configuration, and code from the store or the release). Options.Modules
// is the caller's slice: the agent's own copy is changed, not it.
func (a *Agent) dropCode() {
	mods := slices.Clone(a.opts.Modules)
	for i := range mods {
		mods[i].withoutCode()
	}
	a.opts.Modules = mods
}
