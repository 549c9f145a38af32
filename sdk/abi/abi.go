package abi

import (
	"encoding/json"
	"fmt"
	"slices"
)

// ABIVersion is the version of the host–module contract described in
// sdk/ABI.md.
// A module built for another ABI version is refused at load time.
const ABIVersion = 1

// Op is the change to a path that a job handles.
type Op string

// Operations a job can bind to.
const (
	Create Op = "create" // the path is absent in the state and present in the target
	Update Op = "update" // the path is present in both and differs
	Delete Op = "delete" // the path is present in the state and null in the target
	Any    Op = "any"    // all of the above
)

// Valid reports whether o is one of the defined operations.
func (o Op) Valid() bool {
	switch o {
	case Create, Update, Delete, Any:
		return true
	}
	return false
}

// Matches reports whether a job bound to o handles the change c.
func (o Op) Matches(c Op) bool { return o == Any || o == c }

// Manifest describes a module: who it is, which jobs and sensors it offers
// and which resources it asks for. The host reads it by calling the
// module's tern_describe export once, with no hardware access.
type Manifest struct {
	Name    string       `json:"name"`
	Version string       `json:"version"`
	ABI     int          `json:"abi"`
	Jobs    []JobSpec    `json:"jobs"`
	Sensors []SensorSpec `json:"sensors,omitempty"`
	// Resources are the kinds of hardware the module asks for: "gpio",
	// "i2c", "serial". A module gets a resource only if it asks for its
	// kind here and the device's configuration grants the resource.
	Resources []string `json:"resources,omitempty"`
}

// Resource kinds a manifest may ask for.
var resourceKinds = []string{"gpio", "i2c", "serial"}

// Requests reports whether the manifest asks for the resource kind.
func (m Manifest) Requests(kind string) bool { return slices.Contains(m.Resources, kind) }

// Kind is what a job is to the planner.
type Kind string

// Job kinds.
const (
	// KindAction: condition, effect and run. The default.
	KindAction Kind = "action"
	// KindMethod: condition and an expansion into other jobs (an HTN
	// compound task). The planner tries methods before actions.
	KindMethod Kind = "method"
	// KindCommand: work a fleet job runs (docs/jobs.md), with the job's
	// arguments as the call's target; never planned. It has no path and
	// no op, and tern_run's value is the job's result.
	KindCommand Kind = "command"
)

// Declarative answers a job can give in its manifest instead of a call, so
// the planner need not cross into the sandbox for them.
const (
	// ConditionAlways: the job's condition always holds.
	ConditionAlways = "always"
	// EffectTarget: after the job, the path holds the target's value (or is
	// gone, for a delete).
	EffectTarget = "target"
)

// JobSpec declares a job: the path pattern it binds to (JSON Pointer with
// ":param" tokens, e.g. "/relays/:name"), the operation it handles, and
// whether it is an action or a method.
type JobSpec struct {
	Name        string `json:"name"`
	Path        string `json:"path"`
	Op          Op     `json:"op"`
	Kind        Kind   `json:"kind,omitempty"`
	Description string `json:"description,omitempty"`
	// Condition is "" (the module's tern_try decides) or ConditionAlways.
	Condition string `json:"condition,omitempty"`
	// Effect is "" (the module's tern_try computes it) or EffectTarget.
	// Methods have no effect of their own.
	Effect string `json:"effect,omitempty"`
}

// IsMethod reports whether the job is a method.
func (j JobSpec) IsMethod() bool { return j.Kind == KindMethod }

// IsCommand reports whether the job is a command: run by fleet jobs,
// never planned.
func (j JobSpec) IsCommand() bool { return j.Kind == KindCommand }

// SensorSpec declares a sensor: the state path it reports and how often the
// host calls it, in milliseconds.
type SensorSpec struct {
	Name       string `json:"name"`
	Path       string `json:"path"`
	IntervalMS int    `json:"interval_ms"`
	// Busy makes it a busy sensor: while the value at Path is true or a
	// non-empty string (the reason, e.g. "door open"), the device defers
	// the disruptive changes of rollouts (docs/rollouts.md).
	Busy bool `json:"busy,omitempty"`
	// Facts makes it a facts sensor: the value at Path is a JSON object
	// whose members (strings, numbers, booleans) are facts the device
	// reports about itself (the state report's "facts"; tern inventory
	// --where selects by them). A host that predates facts sensors reads
	// it as a plain sensor.
	Facts bool `json:"facts,omitempty"`
}

// Validate checks what the host relies on.
func (m Manifest) Validate() error {
	if err := m.checkBounds(); err != nil { // bounds.go
		return err
	}
	if m.Name == "" || m.Version == "" {
		return fmt.Errorf("sdk: manifest needs a name and a version (got %q, %q)", m.Name, m.Version)
	}
	if m.ABI != ABIVersion {
		return fmt.Errorf("sdk: module %s was built for ABI %d, this host speaks ABI %d: rebuild it with a matching sdk", m.Name, m.ABI, ABIVersion)
	}
	seen := map[string]bool{}
	for _, j := range m.Jobs {
		if j.Name == "" || seen[j.Name] {
			return fmt.Errorf("sdk: module %s: job names must be unique and not empty (%q)", m.Name, j.Name)
		}
		seen[j.Name] = true
		if j.IsCommand() {
			if j.Path != "" || j.Op != "" || j.Condition != "" || j.Effect != "" {
				return fmt.Errorf("sdk: module %s: command %s: a command has no path, op, condition or effect (it is never planned)", m.Name, j.Name)
			}
			continue
		}
		if !j.Op.Valid() {
			return fmt.Errorf("sdk: module %s: job %s: unknown op %q (want create, update, delete or any)", m.Name, j.Name, j.Op)
		}
		if j.Kind != "" && j.Kind != KindAction && j.Kind != KindMethod {
			return fmt.Errorf("sdk: module %s: job %s: unknown kind %q (want action, method or command)", m.Name, j.Name, j.Kind)
		}
		if j.Condition != "" && j.Condition != ConditionAlways {
			return fmt.Errorf("sdk: module %s: job %s: unknown condition %q (want empty or %q)", m.Name, j.Name, j.Condition, ConditionAlways)
		}
		if j.Effect != "" && (j.Effect != EffectTarget || j.IsMethod()) {
			return fmt.Errorf("sdk: module %s: job %s: effect %q is not allowed (actions may declare %q, methods none)", m.Name, j.Name, j.Effect, EffectTarget)
		}
	}
	for _, r := range m.Resources {
		if !slices.Contains(resourceKinds, r) {
			return fmt.Errorf("sdk: module %s: unknown resource kind %q (want gpio, i2c or serial)", m.Name, r)
		}
	}
	for _, s := range m.Sensors {
		if s.Name == "" || seen[s.Name] {
			return fmt.Errorf("sdk: module %s: sensor names must be unique and not empty (%q)", m.Name, s.Name)
		}
		seen[s.Name] = true
		if s.IntervalMS <= 0 {
			return fmt.Errorf("sdk: module %s: sensor %s: interval must be positive", m.Name, s.Name)
		}
		if s.Busy && s.Facts {
			return fmt.Errorf("sdk: module %s: sensor %s: a sensor is a busy sensor or a facts sensor, not both (their values differ: a flag or reason, an object of facts)", m.Name, s.Name)
		}
	}
	return nil
}

// Call is the input of every job and sensor export (its wire form is in
// sdk/ABI.md and wire.go).
type Call struct {
	// Job is the job or sensor name.
	Job string `json:"job"`
	// Path is the concrete path the job works on, e.g. "/relays/heater".
	Path string `json:"path"`
	// Params binds the pattern's parameters, e.g. {"name": "heater"}.
	Params map[string]string `json:"params,omitempty"`
	// Current is the state's value at Path; absent when the path is absent.
	Current json.RawMessage `json:"current,omitempty"`
	// Target is the target's value at Path; null for a delete.
	Target json.RawMessage `json:"target,omitempty"`
}

// Try is the value of a tern_try result: whether the job's condition holds
// and, when it does, an action's effect (the path's value after the job;
// null deletes it) or a method's expansion.
type Try struct {
	OK bool `json:"ok"`
	// PathFree: the answer did not depend on the path or its parameters
	// (the job did not ask for them), so it holds for every path the job
	// binds, given the same current and target values.
	PathFree bool            `json:"path_free,omitempty"`
	Effect   json.RawMessage `json:"effect,omitempty"`
	Tasks    []TaskRef       `json:"tasks,omitempty"`
}

// TaskRef is one step of a method's expansion: a job (of the same module,
// or "module.job" for another's) applied to a concrete path, or to the
// method's own path when Path is Here ("."). Target, when set, replaces
// the target's value at Path for that step.
type TaskRef struct {
	Job    string          `json:"job"`
	Path   string          `json:"path"`
	Target json.RawMessage `json:"target,omitempty"`
}

// Here, as a step's path, is the method's own path.
const Here = "."

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

// Errno is what a host function returns to a module: 0 for success, one
// of these otherwise (negated where the function also returns a value).
type Errno int32

// Host function error numbers. They are part of the ABI: never renumber.
const (
	ErrnoOK         Errno = 0
	ErrnoNotGranted Errno = 1 // the resource was not granted to this module
	ErrnoPlanning   Errno = 2 // hardware access while planning (condition, effect)
	ErrnoNoLine     Errno = 3 // the board has no such line or bus
	ErrnoIO         Errno = 4 // the hardware reported an error
	ErrnoBadArg     Errno = 5 // an argument was out of range or not UTF-8
	ErrnoNoDevice   Errno = 6 // no I2C device answered at the address (NACK)
	ErrnoRate       Errno = 7 // past the rate the grant allows (GPIO writes); try later
	ErrnoNoState    Errno = 8 // the state cannot be read in this call (a sensor, configure)
)

var errnoText = map[Errno]string{
	ErrnoNotGranted: "resource not granted to this module",
	ErrnoPlanning:   "hardware access is not allowed while planning",
	ErrnoNoLine:     "no such line on this board",
	ErrnoIO:         "hardware I/O error",
	ErrnoBadArg:     "bad argument",
	ErrnoNoDevice:   "no device answers at that address",
	ErrnoRate:       "past the rate granted for this resource",
	ErrnoNoState:    "the state cannot be read in this call",
}

// Error makes an Errno an error; the guest SDK returns these.
func (e Errno) Error() string {
	if s, ok := errnoText[e]; ok {
		return "sdk: " + s
	}
	return fmt.Sprintf("sdk: host error %d", int32(e))
}
