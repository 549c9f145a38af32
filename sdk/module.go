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
func (c *Context) Config(v any) error { return decode("config", c.call.Config, v) }

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

// SenseFunc reads hardware and returns the value of the sensor's path.
type SenseFunc func(*Context) (any, error)

var registry = struct {
	manifest Manifest
	jobs     map[string]Action
	sensors  map[string]SenseFunc
}{
	manifest: Manifest{ABI: ABIVersion},
	jobs:     map[string]Action{},
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
	registry.manifest.Jobs = append(registry.manifest.Jobs, JobSpec{Name: name, Path: path, Op: op})
	registry.jobs[name] = a
}

// Sensor registers a sensor that reports the value at path every interval.
func Sensor(name, path string, every time.Duration, fn SenseFunc) {
	registry.manifest.Sensors = append(registry.manifest.Sensors, SensorSpec{Name: name, Path: path, IntervalMS: int(every / time.Millisecond)})
	registry.sensors[name] = fn
}

// Describe returns the registered manifest.
func Describe() Manifest { return registry.manifest }

// Dispatch runs one export on a decoded call. It is what the wasm exports
// call, exported so module logic can be tested natively.
func Dispatch(export string, c Call) Result {
	ctx := NewContext(c)
	switch export {
	case "sense":
		fn, ok := registry.sensors[c.Job]
		if !ok {
			return errResult(fmt.Errorf("sdk: no sensor %q", c.Job))
		}
		return valueResult(fn(ctx))
	}
	a, ok := registry.jobs[c.Job]
	if !ok {
		return errResult(fmt.Errorf("sdk: no job %q", c.Job))
	}
	switch export {
	case "condition":
		if a.Condition == nil {
			return valueResult(true, nil)
		}
		return valueResult(a.Condition(ctx))
	case "effect":
		if a.Effect == nil {
			if len(c.Target) == 0 {
				return Result{Value: json.RawMessage("null")}
			}
			return Result{Value: c.Target}
		}
		return valueResult(a.Effect(ctx))
	case "run":
		return valueResult(nil, a.Run(ctx))
	}
	return errResult(errors.New("sdk: unknown export " + export))
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
