package sdk

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Context is what a job or sensor is called with.
type Context struct {
	call Call
}

// NewContext wraps a decoded call; the exports use it, and so can tests of a
// module's logic that run natively.
func NewContext(c Call) *Context { return &Context{call: c} }

// Job is the job or sensor name.
func (c *Context) Job() string { return c.call.Job }

// Path is the concrete path, e.g. "/relays/heater".
func (c *Context) Path() string { return c.call.Path }

// Param is the value bound to a pattern parameter, e.g. Param("name").
func (c *Context) Param(name string) string { return c.call.Params[name] }

// HasCurrent reports whether the path exists in the current state.
func (c *Context) HasCurrent() bool { return len(c.call.Current) > 0 }

// Current decodes the state's value at the path into v.
func (c *Context) Current(v any) error { return decode("current", c.call.Current, v) }

// Target decodes the target's value at the path into v.
func (c *Context) Target(v any) error { return decode("target", c.call.Target, v) }

// Config decodes the module's device configuration into v.
func (c *Context) Config(v any) error { return decode("config", registry.config, v) }

// Configure sets the module's device configuration (JSON). The host does it
// once per instance, through tern_configure; native tests of a module's
// logic call it directly.
func Configure(config json.RawMessage) { registry.config = config }

func decode(what string, raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		return fmt.Errorf("sdk: no %s value", what)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("sdk: decoding %s: %w", what, err)
	}
	return nil
}

// Action is a job: Condition and Effect for planning, Run for doing.
type Action struct {
	// Condition reports whether the job applies; nil means always.
	Condition func(*Context) (bool, error)
	// Effect returns the path's value after the job ran; nil means the
	// target's value. Returning nil deletes the path.
	Effect func(*Context) (any, error)
	// Run changes the world. It is the only part with hardware access.
	Run func(*Context) error
}

// Expansion is what a method does: an HTN compound task that, when its
// condition holds, expands into other jobs, which the planner then tries in
// order on its copy of the state. Methods are tried before actions.
type Expansion struct {
	// Condition reports whether the method applies; nil means always.
	Condition func(*Context) (bool, error)
	// Expand lists the steps, each a job on a concrete path (see Do).
	Expand func(*Context) ([]TaskRef, error)
}

// Do names one step of a method's expansion: job (of this module, or
// "module.job") on path. The step's target is the target's value at path;
// WithTarget overrides it.
func Do(job, path string) TaskRef { return TaskRef{Job: job, Path: path} }

// WithTarget sets the step's target value. It panics if v cannot be
// encoded as JSON, which is a bug in the module.
func (t TaskRef) WithTarget(v any) TaskRef {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("sdk: step %s %s: target cannot be encoded: %v", t.Job, t.Path, err))
	}
	t.Target = b
	return t
}

// SenseFunc reads hardware and returns the value of the sensor's path.
type SenseFunc func(*Context) (any, error)

var registry = struct {
	manifest Manifest
	jobs     map[string]Action
	methods  map[string]Expansion
	sensors  map[string]SenseFunc
	config   json.RawMessage
}{
	manifest: Manifest{ABI: ABIVersion},
	jobs:     map[string]Action{},
	methods:  map[string]Expansion{},
	sensors:  map[string]SenseFunc{},
}

// Module names the module and its version. Call it once, in init.
func Module(name, version string) {
	registry.manifest.Name = name
	registry.manifest.Version = version
}

// Job registers an action bound to a path pattern and an operation.
func Job(name, path string, op Op, a Action) {
	if a.Run == nil {
		panic("sdk: job " + name + " has no Run")
	}
	spec := JobSpec{Name: name, Path: path, Op: op}
	if a.Condition == nil {
		spec.Condition = ConditionAlways
	}
	if a.Effect == nil {
		spec.Effect = EffectTarget
	}
	registry.manifest.Jobs = append(registry.manifest.Jobs, spec)
	registry.jobs[name] = a
}

// Method registers a method bound to a path pattern and an operation.
func Method(name, path string, op Op, m Expansion) {
	if m.Expand == nil {
		panic("sdk: method " + name + " has no Expand")
	}
	spec := JobSpec{Name: name, Path: path, Op: op, Kind: KindMethod}
	if m.Condition == nil {
		spec.Condition = ConditionAlways
	}
	registry.manifest.Jobs = append(registry.manifest.Jobs, spec)
	registry.methods[name] = m
}

// Sensor registers a sensor that reports the value at path every interval.
func Sensor(name, path string, every time.Duration, fn SenseFunc) {
	registry.manifest.Sensors = append(registry.manifest.Sensors, SensorSpec{Name: name, Path: path, IntervalMS: int(every / time.Millisecond)})
	registry.sensors[name] = fn
}

// Describe returns the registered manifest.
func Describe() Manifest { return registry.manifest }

// Dispatch runs one export ("try", "run" or "sense") on a decoded call. It
// is what the wasm exports call, exported so module logic can be tested
// natively.
func Dispatch(export string, c Call) Result {
	ctx := NewContext(c)
	switch export {
	case "sense":
		fn, ok := registry.sensors[c.Job]
		if !ok {
			return errResult(fmt.Errorf("sdk: no sensor %q", c.Job))
		}
		return valueResult(fn(ctx))
	case "try":
		if m, ok := registry.methods[c.Job]; ok {
			return valueResult(tryMethod(ctx, m))
		}
		if a, ok := registry.jobs[c.Job]; ok {
			return valueResult(tryAction(ctx, a))
		}
		return errResult(fmt.Errorf("sdk: no job %q", c.Job))
	case "run":
		a, ok := registry.jobs[c.Job]
		if !ok {
			return errResult(fmt.Errorf("sdk: no action %q", c.Job))
		}
		return valueResult(nil, a.Run(ctx))
	}
	return errResult(errors.New("sdk: unknown export " + export))
}

func tryAction(ctx *Context, a Action) (Try, error) {
	if a.Condition != nil {
		if ok, err := a.Condition(ctx); err != nil || !ok {
			return Try{}, err
		}
	}
	t := Try{OK: true}
	if a.Effect == nil {
		t.Effect = ctx.call.Target
		if len(t.Effect) == 0 {
			t.Effect = json.RawMessage("null")
		}
		return t, nil
	}
	v, err := a.Effect(ctx)
	if err != nil {
		return Try{}, err
	}
	if t.Effect, err = json.Marshal(v); err != nil {
		return Try{}, fmt.Errorf("sdk: encoding effect: %w", err)
	}
	return t, nil
}

func tryMethod(ctx *Context, m Expansion) (Try, error) {
	if m.Condition != nil {
		if ok, err := m.Condition(ctx); err != nil || !ok {
			return Try{}, err
		}
	}
	tasks, err := m.Expand(ctx)
	if err != nil {
		return Try{}, err
	}
	return Try{OK: true, Tasks: tasks}, nil
}

func valueResult(v any, err error) Result {
	if err != nil {
		return errResult(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return errResult(fmt.Errorf("sdk: encoding result: %w", err))
	}
	return Result{Value: b}
}

func errResult(err error) Result { return Result{Error: err.Error()} }
