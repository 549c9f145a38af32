package sdk

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// Context is what a job or sensor is called with. Its values are views
// into the call's input, valid until the job returns.
type Context struct {
	job  string
	f    frame
	path string
	// usedPath: the job asked for its path or parameters, so its answer
	// may differ from path to path.
	usedPath bool
}

// NewContext makes the context a module sees for c, so that a module's
// logic can be tested natively.
func NewContext(c Call) *Context {
	ctx := &Context{job: c.Job}
	if err := decodeCall(EncodeCall(nil, 0, c), &ctx.f); err != nil {
		panic(err) // EncodeCall's output always decodes
	}
	return ctx
}

// Job is the job or sensor name.
func (c *Context) Job() string { return c.job }

// Path is the concrete path, e.g. "/relays/heater".
func (c *Context) Path() string {
	c.usedPath = true
	if c.path == "" && len(c.f.path) > 0 {
		c.path = string(c.f.path)
	}
	return c.path
}

// Param is the value bound to a pattern parameter, e.g. Param("name").
func (c *Context) Param(name string) string {
	c.usedPath = true
	for _, p := range c.f.params {
		if string(p[0]) == name {
			return string(p[1])
		}
	}
	return ""
}

// HasCurrent reports whether the path exists in the current state.
func (c *Context) HasCurrent() bool { return c.f.cur.tag != tagAbsent }

// Current decodes the state's value at the path into v. Numbers, strings
// and booleans into *float64, *int, *string and *bool are decoded without
// encoding/json.
func (c *Context) Current(v any) error { return decodeValue("current", c.f.cur, v) }

// Target decodes the target's value at the path into v, as Current does.
func (c *Context) Target(v any) error { return decodeValue("target", c.f.tgt, v) }

// CurrentValue is the state's value at the path, as a lazy view: reading
// a field of an object decodes only that field. Absent when the path is.
func (c *Context) CurrentValue() Value { return Value{c.f.cur} }

// TargetValue is the target's value at the path (null for a delete), as
// CurrentValue.
func (c *Context) TargetValue() Value { return Value{c.f.tgt} }

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
	v, _, ok := valueAt(b)
	if !ok {
		return Value{}, fmt.Errorf("sdk: reading %s: %w", path, errShort)
	}
	return Value{v}, nil
}

// CurrentNumber, CurrentString and CurrentBool read a scalar current value
// without allocating; the Target ones do the same for the target. They
// fail if the value is absent or of another type.
func (c *Context) CurrentNumber() (float64, error) { return number("current", c.f.cur) }

// TargetNumber: see CurrentNumber.
func (c *Context) TargetNumber() (float64, error) { return number("target", c.f.tgt) }

// CurrentString: see CurrentNumber.
func (c *Context) CurrentString() (string, error) { return str("current", c.f.cur) }

// TargetString: see CurrentNumber.
func (c *Context) TargetString() (string, error) { return str("target", c.f.tgt) }

// CurrentBool: see CurrentNumber.
func (c *Context) CurrentBool() (bool, error) { return boolean("current", c.f.cur) }

// TargetBool: see CurrentNumber.
func (c *Context) TargetBool() (bool, error) { return boolean("target", c.f.tgt) }

func number(what string, v value) (float64, error) {
	if v.tag != tagNumber {
		return 0, typeError(what, "a number", v)
	}
	return v.num, nil
}

func str(what string, v value) (string, error) {
	if v.tag != tagString {
		return "", typeError(what, "a string", v)
	}
	return string(v.data), nil
}

func boolean(what string, v value) (bool, error) {
	if v.tag != tagTrue && v.tag != tagFalse {
		return false, typeError(what, "true or false", v)
	}
	return v.tag == tagTrue, nil
}

func typeError(what, want string, v value) error {
	if v.tag == tagAbsent {
		return fmt.Errorf("sdk: no %s value", what)
	}
	return fmt.Errorf("sdk: %s is %s, not %s", what, v.json(), want)
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

func decodeValue(what string, v value, p any) error {
	if v.tag == tagAbsent {
		return fmt.Errorf("sdk: no %s value", what)
	}
	if err := v.decode(p); err != nil {
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

// Again names a step on the method's own path. Unlike Do(job, c.Path()),
// it leaves the method's answer free of the path, so the planner can reuse
// it for every path with the same values.
func Again(job string) TaskRef { return TaskRef{Job: job, Path: Here} }

// WithTarget sets the step's target value. It panics if v cannot be
// encoded as JSON, which is a bug in the module.
func (t TaskRef) WithTarget(v any) TaskRef {
	// The JSON-like types are written without encoding/json (tree.go).
	tree, err := appendTree(nil, v, 0)
	if err != nil {
		panic(fmt.Sprintf("sdk: step %s %s: target cannot be encoded: %v", t.Job, t.Path, err))
	}
	x, _, _ := valueAt(tree)
	t.Target = appendJSON(nil, x)
	return t
}

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
	manifest: Manifest{ABI: ABIVersion},
}

// handler is a registered job: an action or a method.
type handler struct {
	action *Action
	method *Expansion
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
		spec.Condition = ConditionAlways
	}
	if a.Effect == nil {
		spec.Effect = EffectTarget
	}
	registry.manifest.Jobs = append(registry.manifest.Jobs, spec)
	registry.jobs = append(registry.jobs, handler{action: &a})
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
	registry.jobs = append(registry.jobs, handler{method: &m})
}

// Sensor registers a sensor that reports the value at path every interval.
func Sensor(name, path string, every time.Duration, fn SenseFunc) {
	registry.manifest.Sensors = append(registry.manifest.Sensors, SensorSpec{Name: name, Path: path, IntervalMS: int(every / time.Millisecond)})
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
	if err := decodeCall(in, &ctx.f); err != nil {
		return appendError(out, err)
	}
	if export == "sense" {
		if ctx.f.index >= len(registry.sensors) {
			return appendError(out, fmt.Errorf("sdk: no sensor %d", ctx.f.index))
		}
		ctx.job = registry.manifest.Sensors[ctx.f.index].Name
		v, err := registry.sensors[ctx.f.index](ctx)
		if err != nil {
			return appendError(out, err)
		}
		if out, err = appendValue(append(out, statusOK), v); err != nil {
			return appendError(out[:0], fmt.Errorf("sdk: encoding sensor value: %w", err))
		}
		return out
	}
	if ctx.f.index >= len(registry.jobs) {
		return appendError(out, fmt.Errorf("sdk: no job %d", ctx.f.index))
	}
	h := registry.jobs[ctx.f.index]
	ctx.job = registry.manifest.Jobs[ctx.f.index].Name
	switch export {
	case "try":
		var t tryOut
		var err error
		if h.method != nil {
			t, err = tryMethod(ctx, *h.method)
		} else {
			t, err = tryAction(ctx, *h.action)
		}
		t.pathFree = !ctx.usedPath
		if err == nil {
			out, err = encodeTry(out, t)
		}
		if err != nil {
			return appendError(out[:0], err)
		}
		return out
	case "run":
		if h.action == nil {
			return appendError(out, fmt.Errorf("sdk: %s is a method, not an action", ctx.job))
		}
		if err := h.action.Run(ctx); err != nil {
			return appendError(out, err)
		}
		return append(out, statusOK, tagNull)
	}
	return appendError(out, errors.New("sdk: unknown export "+export))
}

func tryAction(ctx *Context, a Action) (tryOut, error) {
	if a.Condition != nil {
		if ok, err := a.Condition(ctx); err != nil || !ok {
			return tryOut{}, err
		}
	}
	if a.Effect == nil {
		return tryOut{ok: true, effect: ctx.f.tgt}, nil
	}
	v, err := a.Effect(ctx)
	return tryOut{ok: true, effect: v}, err
}

func tryMethod(ctx *Context, m Expansion) (tryOut, error) {
	if m.Condition != nil {
		if ok, err := m.Condition(ctx); err != nil || !ok {
			return tryOut{}, err
		}
	}
	steps, err := m.Expand(ctx)
	return tryOut{ok: true, method: true, steps: steps}, err
}

// Bounds on a manifest. The manifest comes from the module and travels in
// the agent's events and state reports, which must fit one MQTT payload:
// every field a module chooses has a limit, and so has the whole. The
// modules in plugins/ use less than a tenth of each. See ABI.md, "Limits".
const (
	MaxManifestBytes    = 64 << 10 // the whole manifest, encoded as JSON
	MaxNameBytes        = 128      // the module's name, each job's and sensor's
	MaxVersionBytes     = 64
	MaxPathBytes        = 1024 // a job's or a sensor's path pattern
	MaxDescriptionBytes = 1024 // a job's description
	MaxJobs             = 256
	MaxSensors          = 64
	MaxResources        = 16 // entries of "resources" (three kinds; repeats allowed)
	// maxWordBytes bounds the fields whose legal values are a few short
	// words (op, kind, condition, effect, a resource kind), so that the
	// message refusing an unknown one stays short.
	maxWordBytes = 32
)

// checkBounds refuses a manifest with a field or a count over its limit.
// It runs before anything else quotes a field in an error.
func (m Manifest) checkBounds() error {
	where := "sdk: manifest"
	if len(m.Name) <= MaxNameBytes {
		where = "sdk: module " + m.Name + ": manifest"
	}
	field := func(list string, i int, name, s string, limit int) error {
		if len(s) <= limit {
			return nil
		}
		if list != "" {
			name = fmt.Sprintf("%s[%d].%s", list, i, name)
		}
		return fmt.Errorf("%s: %s is %d bytes, at most %d", where, name, len(s), limit)
	}
	count := func(list string, n, limit int) error {
		if n <= limit {
			return nil
		}
		return fmt.Errorf("%s: %d %s, at most %d", where, n, list, limit)
	}
	errs := []error{
		field("", 0, "name", m.Name, MaxNameBytes),
		field("", 0, "version", m.Version, MaxVersionBytes),
		count("jobs", len(m.Jobs), MaxJobs),
		count("sensors", len(m.Sensors), MaxSensors),
		count("resources", len(m.Resources), MaxResources),
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	for i, j := range m.Jobs {
		for _, err := range []error{
			field("jobs", i, "name", j.Name, MaxNameBytes),
			field("jobs", i, "path", j.Path, MaxPathBytes),
			field("jobs", i, "description", j.Description, MaxDescriptionBytes),
			field("jobs", i, "op", string(j.Op), maxWordBytes),
			field("jobs", i, "kind", string(j.Kind), maxWordBytes),
			field("jobs", i, "condition", j.Condition, maxWordBytes),
			field("jobs", i, "effect", j.Effect, maxWordBytes),
		} {
			if err != nil {
				return err
			}
		}
	}
	for i, s := range m.Sensors {
		if err := field("sensors", i, "name", s.Name, MaxNameBytes); err != nil {
			return err
		}
		if err := field("sensors", i, "path", s.Path, MaxPathBytes); err != nil {
			return err
		}
	}
	for i, r := range m.Resources {
		if err := field("resources", i, "kind", r, maxWordBytes); err != nil {
			return err
		}
	}
	// Each field within its limit can still add up to too much.
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if len(b) > MaxManifestBytes {
		return fmt.Errorf("%s: %d bytes as JSON, at most %d", where, len(b), MaxManifestBytes)
	}
	return nil
}

// Truncate cuts s, text that came from a module, to at most n bytes (at a
// UTF-8 boundary) followed by a marker saying how much was cut, e.g.
// "…(cut 12345 bytes)"; s no longer than n is returned as it is. The
// marker is at most 34 bytes.
func Truncate(s string, n int) string {
	n = max(n, 0)
	if len(s) <= n {
		return s
	}
	i := n
	// Back off to the start of the rune that n falls in; at most
	// utf8.UTFMax-1 bytes, whatever s holds.
	for k := 0; k < utf8.UTFMax-1 && i > 0 && !utf8.RuneStart(s[i]); k++ {
		i--
	}
	if !utf8.RuneStart(s[i]) {
		i = n // not UTF-8 there anyway: cut where asked
	}
	cut := len(s) - i
	unit := "bytes"
	if cut == 1 {
		unit = "byte"
	}
	return s[:i] + "…(cut " + strconv.Itoa(cut) + " " + unit + ")"
}
