package runtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/tern-iot/tern/runtime/internal/plan"
	"github.com/tern-iot/tern/runtime/internal/wasmhost"
	"github.com/tern-iot/tern/runtime/state"
	"github.com/tern-iot/tern/runtime/store"
	"github.com/tern-iot/tern/sdk"
)

// module is a loaded module and its sensors.
type module struct {
	name    string
	m       *wasmhost.Module
	sensors []sensor
}

type sensor struct {
	spec sdk.SensorSpec
	path state.Pointer
}

// load installs spec's code in the store (or takes the installed code if
// spec has none), compiles it and registers its jobs and sensors.
func (a *Agent) load(ctx context.Context, spec ModuleSpec) error {
	wasm := spec.Wasm
	if wasm == nil {
		var err error
		if wasm, err = a.installed(spec.Name); err != nil {
			return err
		}
	}
	m, err := a.host.Load(ctx, wasm, spec.Grants, spec.Config)
	if err != nil {
		return fmt.Errorf("runtime: module %s: %w", spec.Name, err)
	}
	man := m.Manifest()
	if spec.Name != "" && spec.Name != man.Name {
		m.Close(ctx)
		return fmt.Errorf("runtime: module configured as %q calls itself %q: fix the name in the configuration", spec.Name, man.Name)
	}
	if spec.Wasm != nil {
		if err := a.install(man.Name, spec.Wasm); err != nil {
			m.Close(ctx)
			return err
		}
	}
	a.log.Info("module loaded", "module", man.Name, "version", man.Version, "compile", m.CompileTime.Round(time.Millisecond))
	mod := &module{name: man.Name, m: m}
	for _, js := range man.Jobs {
		pat, err := state.ParsePattern(js.Path)
		if err != nil {
			m.Close(ctx)
			return fmt.Errorf("runtime: module %s: job %s: %w", man.Name, js.Name, err)
		}
		a.jobs = append(a.jobs, &plan.Job{Module: man.Name, Spec: js, Pattern: pat})
	}
	for _, ss := range man.Sensors {
		p, err := state.ParsePointer(ss.Path)
		if err != nil {
			m.Close(ctx)
			return fmt.Errorf("runtime: module %s: sensor %s: %w", man.Name, ss.Name, err)
		}
		mod.sensors = append(mod.sensors, sensor{spec: ss, path: p})
	}
	a.mods = append(a.mods, mod)
	return nil
}

func (a *Agent) moduleFor(name string) (*module, error) {
	for _, m := range a.mods {
		if m.name == name {
			return m, nil
		}
	}
	return nil, fmt.Errorf("runtime: no module %q", name)
}

// install stores a module's code and marks it active. The previous version
// stays in the store.
func (a *Agent) install(name string, wasm []byte) error {
	sum := sha256.Sum256(wasm)
	h := hex.EncodeToString(sum[:])
	if err := a.opts.Store.Put(moduleCodeKey(name, h), wasm); err != nil {
		return fmt.Errorf("runtime: installing module %s: %w", name, err)
	}
	if err := a.opts.Store.Put(moduleActiveKey(name), []byte(h)); err != nil {
		return fmt.Errorf("runtime: activating module %s: %w", name, err)
	}
	return nil
}

// installed returns the active code of a module installed earlier.
func (a *Agent) installed(name string) ([]byte, error) {
	h, err := a.opts.Store.Get(moduleActiveKey(name))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("runtime: module %s has no code configured and none installed: give its .wasm path in the configuration", name)
	}
	if err != nil {
		return nil, fmt.Errorf("runtime: module %s: %w", name, err)
	}
	wasm, err := a.opts.Store.Get(moduleCodeKey(name, string(h)))
	if err != nil {
		return nil, fmt.Errorf("runtime: module %s: installed code %s: %w", name, h, err)
	}
	if sum := sha256.Sum256(wasm); hex.EncodeToString(sum[:]) != string(h) {
		return nil, fmt.Errorf("runtime: module %s: installed code does not match its hash %s: reinstall it", name, h)
	}
	return wasm, nil
}

// senseInterval is how often the loop runs: the fastest sensor's interval.
func (a *Agent) senseInterval() time.Duration {
	d := time.Second
	first := true
	for _, m := range a.mods {
		for _, s := range m.sensors {
			if iv := time.Duration(s.spec.IntervalMS) * time.Millisecond; first || iv < d {
				d, first = iv, false
			}
		}
	}
	return max(d, 10*time.Millisecond)
}

// sense calls every sensor and writes what it reports into the current state.
func (a *Agent) sense(ctx context.Context) error {
	var errs []error
	for _, m := range a.mods {
		for _, s := range m.sensors {
			raw, err := m.m.Call(ctx, wasmhost.PhaseSense, "sense", sdk.Call{Job: s.spec.Name, Path: s.path.String()})
			if err != nil {
				errs = append(errs, fmt.Errorf("sensor %s.%s: %w", m.name, s.spec.Name, err))
				continue
			}
			v, err := state.Parse(raw)
			if err != nil {
				errs = append(errs, fmt.Errorf("sensor %s.%s: %w", m.name, s.spec.Name, err))
				continue
			}
			if err := live(live{a}).Apply(s.path, v); err != nil {
				errs = append(errs, fmt.Errorf("sensor %s.%s: %w", m.name, s.spec.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// evaluator answers the planner's and executor's questions by calling the
// modules: condition and effect in the planning phase, run in the run phase.
type evaluator struct{ a *Agent }

func (e evaluator) call(ctx context.Context, j *plan.Job, phase wasmhost.Phase, export string, c sdk.Call) (any, error) {
	m, err := e.a.moduleFor(j.Module)
	if err != nil {
		return nil, err
	}
	raw, err := m.m.Call(ctx, phase, export, c)
	if err != nil {
		if errors.Is(err, wasmhost.ErrCall) {
			e.a.event(Event{Kind: EventModuleError, Module: j.Module, Job: j.Spec.Name, Path: c.Path, Message: err.Error()})
		}
		return nil, err
	}
	if len(raw) == 0 {
		return nil, nil
	}
	return state.Parse(raw)
}

func (e evaluator) Condition(ctx context.Context, j *plan.Job, c sdk.Call) (bool, error) {
	v, err := e.call(ctx, j, wasmhost.PhasePlan, "condition", c)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("condition returned %v, not a boolean", v)
	}
	return b, nil
}

func (e evaluator) Effect(ctx context.Context, j *plan.Job, c sdk.Call) (any, error) {
	return e.call(ctx, j, wasmhost.PhasePlan, "effect", c)
}

func (e evaluator) Run(ctx context.Context, j *plan.Job, c sdk.Call) error {
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
	var err error
	var next any
	if v == nil {
		next, err = state.Delete(l.a.current, p)
	} else {
		next, err = state.Set(l.a.current, p, v)
	}
	if err != nil {
		return err
	}
	l.a.current = next
	return nil
}
