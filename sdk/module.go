package sdk

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tern-iot/tern/sdk/abi"
)

// Context is what a job or sensor is called with. Its values are views
// into the call's input, valid until the job returns.
type Context struct {
	job  string
	f    abi.Frame
	path string
	// usedPath: the job asked for its path or parameters, so its answer
	// may differ from path to path.
	usedPath bool
}

// NewContext makes the context a module sees for c, so that a module's
// logic can be tested natively.
func NewContext(c Call) *Context {
	ctx := &Context{job: c.Job}
	if err := abi.DecodeCall(abi.EncodeCall(nil, 0, c), &ctx.f); err != nil {
		panic(err) // EncodeCall's output always decodes
	}
	return ctx
}

// Job is the job or sensor name.
func (c *Context) Job() string { return c.job }

// Path is the concrete path, e.g. "/relays/heater".
func (c *Context) Path() string {
	c.usedPath = true
	if c.path == "" && len(c.f.Path) > 0 {
		c.path = string(c.f.Path)
	}
	return c.path
}

// Param is the value bound to a pattern parameter, e.g. Param("name").
func (c *Context) Param(name string) string {
	c.usedPath = true
	for _, p := range c.f.Params {
		if string(p[0]) == name {
			return string(p[1])
		}
	}
	return ""
}

// HasCurrent reports whether the path exists in the current state.
func (c *Context) HasCurrent() bool { return c.f.Current.Exists() }

// Current decodes the state's value at the path into v. Numbers, strings
// and booleans into *float64, *int, *string and *bool are decoded without
// encoding/json.
func (c *Context) Current(v any) error { return decodeValue("current", c.f.Current, v) }

// Target decodes the target's value at the path into v, as Current does.
func (c *Context) Target(v any) error { return decodeValue("target", c.f.Target, v) }

// CurrentValue is the state's value at the path, as a lazy view: reading
// a field of an object decodes only that field. Absent when the path is.
func (c *Context) CurrentValue() Value { return c.f.Current }

// TargetValue is the target's value at the path (null for a delete), as
// CurrentValue.
func (c *Context) TargetValue() Value { return c.f.Target }

// Read returns the state's value at another path (a JSON Pointer, e.g.
// "/images/nginx"; absent if the path does not exist), as the job sees the
// state: while planning, the state the plan has reached; before and while
// running, the device's current state. What a job reads counts for the
// plan: a task runs after every earlier task that changes what it read,
// and before every later one (ABI.md, "Reading the state"). Read fails in
// sensors and while the module is configured.
func (c *Context) Read(path string) (Value, error) {
	b, err := stateRead(path, &registry.reads)
	if err != nil {
		return Value{}, fmt.Errorf("sdk: reading %s: %w", path, err)
	}
	v, err := abi.DecodeState(b)
	if err != nil {
		return Value{}, fmt.Errorf("sdk: reading %s: %w", path, err)
	}
	return v, nil
}

// Escape makes s one token of a JSON Pointer (RFC 6901: "~" becomes "~0",
// "/" becomes "~1"), for building a path to Read from a name.
func Escape(s string) string {
	if !strings.ContainsAny(s, "~/") {
		return s
	}
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

// CurrentNumber, CurrentString and CurrentBool read a scalar current value
// without allocating; the Target ones do the same for the target. They
// fail if the value is absent or of another type.
func (c *Context) CurrentNumber() (float64, error) { return number("current", c.f.Current) }

// TargetNumber: see CurrentNumber.
func (c *Context) TargetNumber() (float64, error) { return number("target", c.f.Target) }

// CurrentString: see CurrentNumber.
func (c *Context) CurrentString() (string, error) { return str("current", c.f.Current) }

// TargetString: see CurrentNumber.
func (c *Context) TargetString() (string, error) { return str("target", c.f.Target) }

// CurrentBool: see CurrentNumber.
func (c *Context) CurrentBool() (bool, error) { return boolean("current", c.f.Current) }

// TargetBool: see CurrentNumber.
func (c *Context) TargetBool() (bool, error) { return boolean("target", c.f.Target) }

func number(what string, v Value) (float64, error) {
	n, ok := v.Num()
	if !ok {
		return 0, typeError(what, "a number", v)
	}
	return n, nil
}

func str(what string, v Value) (string, error) {
	s, ok := v.Str()
	if !ok {
		return "", typeError(what, "a string", v)
	}
	return s, nil
}

func boolean(what string, v Value) (bool, error) {
	b, ok := v.Bool()
	if !ok {
		return false, typeError(what, "true or false", v)
	}
	return b, nil
}

func typeError(what, want string, v Value) error {
	if !v.Exists() {
		return fmt.Errorf("sdk: no %s value", what)
	}
	return fmt.Errorf("sdk: %s is %s, not %s", what, v.JSON(), want)
}

// Config decodes the module's device configuration into v.
func (c *Context) Config(v any) error {
	if len(registry.config) == 0 {
		return errors.New("sdk: no config value")
	}
	if err := json.Unmarshal(registry.config, v); err != nil {
		return fmt.Errorf("sdk: decoding config: %w", err)
	}
	return nil
}

// Configure sets the module's device configuration (JSON). The host does it
// once per instance, through tern_configure; native tests of a module's
// logic call it directly.
func Configure(config json.RawMessage) {
	registry.config = config
	registry.decoded = nil
}

// ConfigOf decodes the module's device configuration into a T once and
// returns that value on every later call: the host configures an instance
// once, so there is nothing to decode again on the planner's hot path.
func ConfigOf[T any](c *Context) (*T, error) {
	if v, ok := registry.decoded.(*T); ok {
		return v, nil
	}
	v := new(T)
	if err := c.Config(v); err != nil {
		return nil, err
	}
	registry.decoded = v
	return v, nil
}

func decodeValue(what string, v Value, p any) error {
	if !v.Exists() {
		return fmt.Errorf("sdk: no %s value", what)
	}
	if err := v.Decode(p); err != nil {
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
// TaskRef.WithTarget overrides it.
func Do(job, path string) TaskRef { return TaskRef{Job: job, Path: path} }

// Again names a step on the method's own path. Unlike Do(job, c.Path()),
// it leaves the method's answer free of the path, so the planner can reuse
// it for every path with the same values.
func Again(job string) TaskRef { return TaskRef{Job: job, Path: Here} }

// SenseFunc reads hardware and returns the value of the sensor's path.
type SenseFunc func(*Context) (any, error)

// registry holds what the module registered; the slices are in manifest
// order, which is how calls name jobs and sensors.
var registry = struct {
	manifest Manifest
	jobs     []handler
	sensors  []SenseFunc
	config   json.RawMessage
	decoded  any     // the configuration as ConfigOf last decoded it
	ctx      Context // reused: one call at a time per instance
	reads    []byte  // what Read got during the current call
}{
	manifest: Manifest{ABI: abi.ABIVersion},
}

// handler is a registered job: an action, a method or a command.
type handler struct {
	action  *Action
	method  *Expansion
	command CommandFunc
}

// CommandFunc does a command's work: the job's arguments are the call's
// target (Context.Target), and what it returns, the job's result (JSON,
// at most 64 KiB; nil for none).
type CommandFunc func(*Context) (any, error)

// Command registers a command: work that a fleet job runs once or on a
// schedule (docs/jobs.md, "tern job submit"), never planned. It may touch
// the hardware the module was granted, like an action's Run.
func Command(name string, fn CommandFunc) {
	if fn == nil {
		panic("sdk: command " + name + " has no function")
	}
	registry.manifest.Jobs = append(registry.manifest.Jobs, JobSpec{Name: name, Kind: abi.KindCommand})
	registry.jobs = append(registry.jobs, handler{command: fn})
}

// Module names the module and its version. Call it once, in init.
func Module(name, version string) {
	registry.manifest.Name = name
	registry.manifest.Version = version
}

// Requests declares the kinds of hardware the module uses: "gpio", "i2c",
// "serial". Without it the module gets none, whatever the device grants.
func Requests(kinds ...string) {
	registry.manifest.Resources = append(registry.manifest.Resources, kinds...)
}

// Job registers an action bound to a path pattern and an operation.
func Job(name, path string, op Op, a Action) {
	if a.Run == nil {
		panic("sdk: job " + name + " has no Run")
	}
	spec := JobSpec{Name: name, Path: path, Op: op}
	if a.Condition == nil {
		spec.Condition = abi.ConditionAlways
	}
	if a.Effect == nil {
		spec.Effect = abi.EffectTarget
	}
	registry.manifest.Jobs = append(registry.manifest.Jobs, spec)
	registry.jobs = append(registry.jobs, handler{action: &a})
}

// Method registers a method bound to a path pattern and an operation.
func Method(name, path string, op Op, m Expansion) {
	if m.Expand == nil {
		panic("sdk: method " + name + " has no Expand")
	}
	spec := JobSpec{Name: name, Path: path, Op: op, Kind: abi.KindMethod}
	if m.Condition == nil {
		spec.Condition = abi.ConditionAlways
	}
	registry.manifest.Jobs = append(registry.manifest.Jobs, spec)
	registry.jobs = append(registry.jobs, handler{method: &m})
}

// Sensor registers a sensor that reports the value at path every interval.
func Sensor(name, path string, every time.Duration, fn SenseFunc) {
	registry.manifest.Sensors = append(registry.manifest.Sensors, SensorSpec{Name: name, Path: path, IntervalMS: int(every / time.Millisecond)})
	registry.sensors = append(registry.sensors, fn)
}

// BusySensor registers a busy sensor: it reports at path, every interval,
// whether the device is busy (a machine mid-cycle, a door open): true, or
// a non-empty string that says why, defers the disruptive changes of
// rollouts until it reports false or "" (or the device's bound passes).
func BusySensor(name, path string, every time.Duration, fn SenseFunc) {
	registry.manifest.Sensors = append(registry.manifest.Sensors, SensorSpec{Name: name, Path: path, IntervalMS: int(every / time.Millisecond), Busy: true})
	registry.sensors = append(registry.sensors, fn)
}

// FactsSensor registers a facts sensor: it reports at path, every
// interval, an object whose members are facts about the device (a
// firmware version, a serial number, a site): strings, numbers or
// booleans, e.g. map[string]any{"hw_rev": "C", "sensors": 3}. The device
// reports them in its state report's "facts" (at most 64 of them, names
// of A-Z a-z 0-9 . _ - up to 64 characters, values up to 64 bytes; the
// facts of the device's ternd.yaml win over a module's), and tern
// inventory --where selects devices by them.
func FactsSensor(name, path string, every time.Duration, fn SenseFunc) {
	registry.manifest.Sensors = append(registry.manifest.Sensors, SensorSpec{Name: name, Path: path, IntervalMS: int(every / time.Millisecond), Facts: true})
	registry.sensors = append(registry.sensors, fn)
}

// Describe returns the registered manifest.
func Describe() Manifest { return registry.manifest }

// dispatch runs one export ("try", "run" or "sense") on an encoded call
// and returns the encoded result.
func dispatch(export string, in []byte, out []byte) []byte {
	ctx := &registry.ctx
	*ctx = Context{}
	registry.reads = registry.reads[:0]
	if err := abi.DecodeCall(in, &ctx.f); err != nil {
		return abi.AppendError(out, err)
	}
	if export == "sense" {
		if ctx.f.Index >= len(registry.sensors) {
			return abi.AppendError(out, fmt.Errorf("sdk: no sensor %d", ctx.f.Index))
		}
		ctx.job = registry.manifest.Sensors[ctx.f.Index].Name
		v, err := registry.sensors[ctx.f.Index](ctx)
		if err != nil {
			return abi.AppendError(out, err)
		}
		if out, err = abi.EncodeValue(out, v); err != nil {
			return abi.AppendError(out[:0], fmt.Errorf("sdk: encoding sensor value: %w", err))
		}
		return out
	}
	if ctx.f.Index >= len(registry.jobs) {
		return abi.AppendError(out, fmt.Errorf("sdk: no job %d", ctx.f.Index))
	}
	h := registry.jobs[ctx.f.Index]
	ctx.job = registry.manifest.Jobs[ctx.f.Index].Name
	if h.command != nil {
		if export != "run" {
			return abi.AppendError(out, fmt.Errorf("sdk: %s is a command: it is run, never planned", ctx.job))
		}
		v, err := h.command(ctx)
		if err != nil {
			return abi.AppendError(out, err)
		}
		if out, err = abi.EncodeValue(out, v); err != nil {
			return abi.AppendError(out[:0], fmt.Errorf("sdk: encoding the result of %s: %w", ctx.job, err))
		}
		return out
	}
	switch export {
	case "try":
		var t abi.TryOut
		var err error
		if h.method != nil {
			t, err = tryMethod(ctx, *h.method)
		} else {
			t, err = tryAction(ctx, *h.action)
		}
		t.PathFree = !ctx.usedPath
		if err == nil {
			out, err = abi.EncodeTry(out, t)
		}
		if err != nil {
			return abi.AppendError(out[:0], err)
		}
		return out
	case "run":
		if h.action == nil {
			return abi.AppendError(out, fmt.Errorf("sdk: %s is a method, not an action", ctx.job))
		}
		if err := h.action.Run(ctx); err != nil {
			return abi.AppendError(out, err)
		}
		out, _ = abi.EncodeValue(out, nil) // null: never an error
		return out
	}
	return abi.AppendError(out, errors.New("sdk: unknown export "+export))
}

func tryAction(ctx *Context, a Action) (abi.TryOut, error) {
	if a.Condition != nil {
		if ok, err := a.Condition(ctx); err != nil || !ok {
			return abi.TryOut{}, err
		}
	}
	if a.Effect == nil {
		return abi.TryOut{OK: true, Effect: ctx.f.Target}, nil
	}
	v, err := a.Effect(ctx)
	return abi.TryOut{OK: true, Effect: v}, err
}

func tryMethod(ctx *Context, m Expansion) (abi.TryOut, error) {
	if m.Condition != nil {
		if ok, err := m.Condition(ctx); err != nil || !ok {
			return abi.TryOut{}, err
		}
	}
	steps, err := m.Expand(ctx)
	return abi.TryOut{OK: true, Method: true, Steps: steps}, err
}
