package testbench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/internal/daemon"
	"github.com/tern-iot/tern/internal/suggest"
	"github.com/tern-iot/tern/runtime/window"
)

// Scenario is one scenario file: a fleet of simulated boards, the
// operator's and the world's actions on a timeline, and what must hold.
// docs/testbench.md is its reference; the field names are the file's keys.
type Scenario struct {
	// Name names the scenario in reports; default: the file's name.
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// Fleet is the fleet name on the broker; default "testbench".
	Fleet string `yaml:"fleet"`
	// Broker is "embedded" (default: the broker in tern, in the testbench's
	// process), "mosquitto" (a mosquitto process the testbench starts,
	// with persistence on, as fleets run it) or "cluster" (three `tern
	// broker` processes in a NATS cluster, the MQTT streams on all three;
	// agents spread over the nodes, each listing all three).
	Broker string `yaml:"broker"`
	// Timeout bounds the whole run; default 3m.
	Timeout Duration `yaml:"timeout"`
	// Clock, when set, is the wall-clock time (RFC 3339) of the
	// scenario's start on every board and for the job steps' times; the
	// clocks then run in real time, and advance_clock moves them all
	// ("4 am tomorrow" need not take a day). Default: the real time.
	Clock string `yaml:"clock"`
	// Seed seeds the noise and garbage faults draw; default 1.
	Seed uint64 `yaml:"seed"`
	// Modules are the job modules, by name, that agents run and
	// releases refer to.
	Modules map[string]ModuleSpec `yaml:"modules"`
	// Agents are the ternd agents, each entry a template for Count of them.
	Agents []AgentSpec `yaml:"agents"`
	// Timeline is what happens, and when.
	Timeline []Step `yaml:"timeline"`
	// Assertions are checked once the last step of the timeline is done.
	Assertions []Assertion `yaml:"assertions"`

	// File is where the scenario was read from.
	File string `yaml:"-"`
}

// ModuleSource is where a module's code comes from: exactly one of Plugin
// (a first-party plugin, plugins/NAME, built from source), Build (a Go
// package directory, relative to the scenario file) or Wasm (a .wasm file,
// relative to the scenario file).
type ModuleSource struct {
	Plugin string `yaml:"plugin"`
	Build  string `yaml:"build"`
	Wasm   string `yaml:"wasm"`
}

// ModuleSpec is a module the agents run.
type ModuleSpec struct {
	ModuleSource `yaml:",inline"`
	// Config is the module's device configuration.
	Config any `yaml:"config"`
	// Grants are the hardware it may use, as in ternd.yaml.
	Grants GrantSpec `yaml:"grants"`
}

// GrantSpec is a module's grants, as in ternd.yaml.
type GrantSpec struct {
	GPIO   []string `yaml:"gpio"`
	I2C    []string `yaml:"i2c"`
	Serial []string `yaml:"serial"`
}

// AgentSpec is a template for Count agents with ids NAME-001, NAME-002…
type AgentSpec struct {
	Name  string `yaml:"name"`
	Count int    `yaml:"count"` // default 1
	// Groups are the fleet groups the agents belong to.
	Groups []string `yaml:"groups"`
	// Modules names the modules they run; default: every module.
	Modules []string `yaml:"modules"`
	// Board is what is wired to the simulated board (chips, rooms,
	// serial devices, buttons, wires), in the format of ternd.yaml's sim
	// section; its GPIO lines are the sim board's
	// (boards/data/boards/sim.json).
	Board sim.BoardSpec `yaml:"board"`
	// UpdatePolicy is the agents' ternd.yaml update_policy: maintenance
	// windows and the busy deferral's bound (docs/rollouts.md).
	UpdatePolicy daemon.UpdatePolicy `yaml:"update_policy"`
	// Process runs each agent as a ternd process of its own (a
	// ProcessAgent) instead of in the testbench's process, so that kill
	// is a real SIGKILL. Its board becomes ternd's sim section; what
	// needs the board in the testbench's memory (buttons, hardware,
	// network and clock faults, moving a gps) is refused.
	Process bool `yaml:"process"`

	line  int            // where the entry starts
	lines map[string]int // where its keys are: "process", "board.buttons", …
}

// Selector picks agents: one Device, every agent in a Group, or All.
type Selector struct {
	Device string `yaml:"device"`
	Group  string `yaml:"group"`
	All    bool   `yaml:"all"`
}

func (s Selector) String() string {
	switch {
	case s.Device != "":
		return "device " + s.Device
	case s.Group != "":
		return "group " + s.Group
	}
	return "all agents"
}

// Step is one thing that happens At a time after the start: exactly one
// of its actions.
type Step struct {
	At      Duration     `yaml:"at"`
	Push    *PushStep    `yaml:"push"`
	Release *ReleaseStep `yaml:"release"`
	Fault   *FaultStep   `yaml:"fault"`
	Press   *PressStep   `yaml:"press"`
	MoveGPS *GPSStep     `yaml:"move_gps"`
	Restart *Selector    `yaml:"restart"`
	Kill    *KillStep    `yaml:"kill"`
	// Job submits a job; JobEdit publishes a new version of one with
	// the fields given changed; JobCancel cancels one (docs/jobs.md).
	Job       *JobStep `yaml:"job"`
	JobEdit   *JobStep `yaml:"job_edit"`
	JobCancel *JobStep `yaml:"job_cancel"`
	// AdvanceClock moves the scenario's wall clock, and every board's,
	// forward by this much.
	AdvanceClock *Duration `yaml:"advance_clock"`
	// Rollout starts a rollout (docs/rollouts.md): a module release or a
	// target push under a rollout policy, after its running control.
	Rollout *RolloutStep `yaml:"rollout"`
	// RolloutWatch follows a rollout to the end of the scenario, as tern
	// rollout watch does; with auto_abort it aborts the rollout when its
	// abort rule trips.
	RolloutWatch *RolloutCtlStep `yaml:"rollout_watch"`
	// RolloutPause, RolloutResume and RolloutAbort publish the rollout's
	// next control, as tern rollout pause, resume and abort do.
	RolloutPause  *RolloutCtlStep `yaml:"rollout_pause"`
	RolloutResume *RolloutCtlStep `yaml:"rollout_resume"`
	RolloutAbort  *RolloutCtlStep `yaml:"rollout_abort"`
	// Expect checks an assertion from this moment on, while the timeline
	// goes on.
	Expect *Assertion `yaml:"expect"`
	// Await checks an assertion from this moment on and holds the
	// timeline until it holds or fails: the steps after it run no sooner
	// than it ended ("wave 2 has finished, then the clock moves on").
	Await *Assertion `yaml:"await"`

	line int
}

// PushStep pushes a target to a Device or a Group (not All). Version is
// optional: the testbench numbers each device's and group's pushes 1, 2…
type PushStep struct {
	Device  string         `yaml:"device"`
	Group   string         `yaml:"group"`
	Target  map[string]any `yaml:"target"`
	Version uint64         `yaml:"version"`
}

// ReleaseStep releases new code for Module to the fleet. Version is
// optional: the testbench numbers each module's releases 1, 2…
type ReleaseStep struct {
	Module       string `yaml:"module"`
	ModuleSource `yaml:",inline"`
	Version      uint64 `yaml:"version"`
}

// FaultStep injects a fault into the selected agents for For (default: to
// the end, or, for network_cut, to a network_restore step). Kinds:
// broker_down (no selector), network_cut, network_restore, sensor_stuck,
// sensor_noisy (Amplitude °C), i2c_nack, i2c_bus_error (Chip:
// "bus:address"), serial_silent, serial_garbage (Port), clock_jump (By).
type FaultStep struct {
	Kind      string `yaml:"kind"`
	Selector  `yaml:",inline"`
	Chip      string   `yaml:"chip"`
	Port      string   `yaml:"port"`
	For       Duration `yaml:"for"`
	Amplitude float64  `yaml:"amplitude"`
	By        Duration `yaml:"by"`
	// Node is the cluster node node_down kills, from 1.
	Node int `yaml:"node"`
}

// KillStep cuts the power of the selected agents at random moments and
// brings them back: Count kills at moments drawn uniformly from [at,
// at+Over), each of one agent drawn from the selection, all from the
// scenario's seed. A process agent is killed with SIGKILL; an in-process
// agent cannot be, and is stopped cleanly instead (Agent.Stop). Either
// starts again Down later on the same data directory.
type KillStep struct {
	Selector `yaml:",inline"`
	// Count is how many kills; default 1.
	Count int `yaml:"count"`
	// Over is the window the moments are drawn from; default 0: all at
	// the step's time.
	Over Duration `yaml:"over"`
	// Down is how long an agent stays dead before it starts again;
	// default 0.
	Down Duration `yaml:"down"`
	// DuringJob, when set, makes each kill wait, after its moment, until
	// its agent reports job DuringJob started (job.started; at most a
	// minute): a power cut while the job runs.
	DuringJob string `yaml:"during_job"`
}

// JobStep is a job (docs/jobs.md) for a Device or a Group: its ID (also
// what After and assertions name), the module Command to run with Args,
// and when: At and Deadline on the scenario's clock (RFC 3339), Cron in
// TZ. For job_edit only the fields given change; job_cancel needs only
// the ID.
type JobStep struct {
	ID               string         `yaml:"id"`
	Device           string         `yaml:"device"`
	Group            string         `yaml:"group"`
	Module           string         `yaml:"module"`
	Command          string         `yaml:"command"`
	Args             map[string]any `yaml:"args"`
	At               string         `yaml:"at"`
	Cron             string         `yaml:"cron"`
	TZ               string         `yaml:"tz"`
	Deadline         string         `yaml:"deadline"`
	After            []string       `yaml:"after"` // job ids; "ID:ended" for after it ended, however
	Attempts         int            `yaml:"attempts"`
	RetryInterrupted bool           `yaml:"retry_interrupted"`
}

// RolloutStep starts rollout ID of a module release (Module and its
// source, as release) or of a target (Device or Group, and Target, as
// push). Waves are cumulative shares, the last 1; the first opens Start
// after the step on the scenario's clock, the others Interval apart.
type RolloutStep struct {
	ID           string `yaml:"id"`
	Module       string `yaml:"module"`
	ModuleSource `yaml:",inline"`
	Device       string         `yaml:"device"`
	Group        string         `yaml:"group"`
	Target       map[string]any `yaml:"target"`
	Version      uint64         `yaml:"version"`
	Waves        []float64      `yaml:"waves"`
	Interval     Duration       `yaml:"interval"`
	Start        Duration       `yaml:"start"`
	Disruptive   bool           `yaml:"disruptive"`
	Windows      []window.Spec  `yaml:"windows"`
	DeferMax     Duration       `yaml:"defer_max"`
	// Abort is the rule rollout_watch's auto_abort applies: more than
	// FailedPercent of the finished devices failed, once MinFinished
	// have finished.
	Abort *struct {
		FailedPercent float64 `yaml:"failed_percent"`
		MinFinished   int     `yaml:"min_finished"`
	} `yaml:"abort"`
}

// RolloutCtlStep names a rollout, for rollout_watch (AutoAbort), pause,
// resume and abort (Reason).
type RolloutCtlStep struct {
	ID        string `yaml:"id"`
	AutoAbort bool   `yaml:"auto_abort"`
	Reason    string `yaml:"reason"`
}

// PressStep presses a button of the selected agents for For (default
// 200ms).
type PressStep struct {
	Selector `yaml:",inline"`
	Line     string   `yaml:"line"`
	For      Duration `yaml:"for"`
}

// GPSStep moves the selected agents' GPS receivers.
type GPSStep struct {
	Selector `yaml:",inline"`
	Port     string  `yaml:"port"`
	Lat      float64 `yaml:"lat"`
	Lon      float64 `yaml:"lon"`
}

// Assertion is one check: exactly one of its kinds.
type Assertion struct {
	// Name labels it in reports; default: made from the check.
	Name         string           `yaml:"name"`
	Converged    *ConvergedCheck  `yaml:"converged"`
	NotConverged *NotConvergedChk `yaml:"not_converged"`
	State        *StateCheck      `yaml:"state"`
	Event        *EventCheck      `yaml:"event"`
	NothingLost  *LostCheck       `yaml:"nothing_lost"`
	RolledBack   *RollbackCheck   `yaml:"rolled_back"`
	Job          *JobCheck        `yaml:"job"`
	Rollout      *RolloutCheck    `yaml:"rollout"`

	line int
}

// RolloutCheck: every selected agent in Wave (from 1; 0: any) reports
// rollout ID in Phase, Within; with Module and ModuleVersion, it runs that
// version of the module (a rolled back or never installed release shows);
// with AppliedWithin, it let the change through at most that long after
// the later of its last button press ending and its maintenance window
// opening (AppliedAfter, on the scenario's clock), and not before.
type RolloutCheck struct {
	Selector      `yaml:",inline"`
	ID            string   `yaml:"id"`
	Wave          int      `yaml:"wave"`
	Phase         string   `yaml:"phase"`
	Module        string   `yaml:"module"`
	ModuleVersion string   `yaml:"module_version"`
	AppliedAfter  string   `yaml:"applied_after"`
	AppliedWithin Duration `yaml:"applied_within"`
	Within        Duration `yaml:"within"`
}

// ConvergedCheck: every selected agent reports converged on the target
// the testbench pushed to it last, Within (default 0: already).
type ConvergedCheck struct {
	Selector `yaml:",inline"`
	Within   Duration `yaml:"within"`
}

// NotConvergedChk: no selected agent reports converged on its latest
// target at any time during For.
type NotConvergedChk struct {
	Selector `yaml:",inline"`
	For      Duration `yaml:"for"`
}

// JobCheck: every selected agent's status of job ID, as the operator
// reads it from the broker (tern job status), is Phase, Within; Attempt
// and Result (a substring of the result's JSON) where given.
type JobCheck struct {
	Selector `yaml:",inline"`
	ID       string   `yaml:"id"`
	Phase    string   `yaml:"phase"`
	Attempt  int      `yaml:"attempt"`
	Result   string   `yaml:"result"`
	Within   Duration `yaml:"within"`
}

// StateCheck: every selected agent's reported state has Equals at Path (a
// JSON Pointer), Within.
type StateCheck struct {
	Selector `yaml:",inline"`
	Path     string   `yaml:"path"`
	Equals   any      `yaml:"equals"`
	Within   Duration `yaml:"within"`
}

// EventCheck: every selected agent reported, since the start, an event of
// Kind (with Module, Job and a Message containing Message, where given),
// Within.
type EventCheck struct {
	Selector `yaml:",inline"`
	Kind     string   `yaml:"kind"`
	Module   string   `yaml:"module"`
	Job      string   `yaml:"job"`
	Message  string   `yaml:"message"`
	Within   Duration `yaml:"within"`
}

// RollbackCheck: every selected agent reported module.rolled_back for
// Module, Within.
type RollbackCheck struct {
	Selector `yaml:",inline"`
	Module   string   `yaml:"module"`
	Within   Duration `yaml:"within"`
}

// LostCheck: every selected agent's events arrived numbered 1…N with no
// gap (EventReport.Seq), Within (default 10s, for stragglers).
type LostCheck struct {
	Selector `yaml:",inline"`
	Within   Duration `yaml:"within"`
}

// Duration is a time.Duration written as Go writes one: 500ms, 5s, 1m30s.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		return fmt.Errorf("line %d: %q is not a duration: write it as 500ms, 5s or 1m30s", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

func (d Duration) String() string { return time.Duration(d).String() }

// Load reads and checks a scenario file. Errors name the line and say what
// to write instead; all problems are reported at once.
func Load(path string) (*Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("testbench: %w", err)
	}
	sc, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("testbench: %s: %w", path, err)
	}
	sc.File = path
	if sc.Name == "" {
		sc.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	return sc, nil
}

// Parse reads a scenario from YAML. Unknown keys are refused.
func Parse(b []byte) (*Scenario, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	if root.Kind == 0 {
		return nil, errors.New("the file is empty; a scenario needs at least agents and assertions (see docs/testbench.md)")
	}
	errs := checkKeys(&root, reflect.TypeFor[Scenario](), "")
	var sc Scenario
	if err := root.Decode(&sc); err != nil {
		return nil, errors.Join(append(errs, friendlyDecode(err))...)
	}
	sc.lines(root.Content[0])
	sc.defaults()
	if err := sc.validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &sc, nil
}

// lines records where each step and assertion starts, for messages.
func (sc *Scenario) lines(doc *yaml.Node) {
	for i := 0; i+1 < len(doc.Content); i += 2 {
		items := doc.Content[i+1].Content
		switch doc.Content[i].Value {
		case "timeline":
			for j := range sc.Timeline {
				if j < len(items) {
					sc.Timeline[j].line = items[j].Line
					if sc.Timeline[j].Expect != nil {
						sc.Timeline[j].Expect.line = items[j].Line
					}
					if sc.Timeline[j].Await != nil {
						sc.Timeline[j].Await.line = items[j].Line
					}
				}
			}
		case "assertions":
			for j := range sc.Assertions {
				if j < len(items) {
					sc.Assertions[j].line = items[j].Line
				}
			}
		case "agents":
			for j := range sc.Agents {
				if j < len(items) {
					a := &sc.Agents[j]
					a.line, a.lines = items[j].Line, map[string]int{}
					keyLines(items[j], "", a.lines)
				}
			}
		}
	}
}

// keyLines records the line of every key under n, by its dotted path
// (board.i2c[0].power).
func keyLines(n *yaml.Node, where string, out map[string]int) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := join(where, n.Content[i].Value)
			out[k] = n.Content[i].Line
			keyLines(n.Content[i+1], k, out)
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			k := fmt.Sprintf("%s[%d]", where, i)
			out[k] = item.Line
			keyLines(item, k, out)
		}
	}
}

// checkKeys walks the YAML along the Go type and refuses keys the type
// does not have, naming the line, where in the file, and the keys there
// are (and the nearest one).
func checkKeys(n *yaml.Node, t reflect.Type, where string) []error {
	for n.Kind == yaml.DocumentNode || n.Kind == yaml.AliasNode {
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		} else if len(n.Content) > 0 {
			n = n.Content[0]
		} else {
			return nil
		}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var errs []error
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode || t == reflect.TypeFor[Duration]() {
			return nil // decoding says what is wrong
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				errs = append(errs, unknownKey(k, where, fields))
				continue
			}
			errs = append(errs, checkKeys(v, ft, join(where, k.Value))...)
		}
	case reflect.Slice:
		if n.Kind == yaml.SequenceNode {
			for i, item := range n.Content {
				errs = append(errs, checkKeys(item, t.Elem(), fmt.Sprintf("%s[%d]", where, i))...)
			}
		}
	case reflect.Map:
		if n.Kind == yaml.MappingNode && t.Elem().Kind() != reflect.Interface {
			for i := 0; i+1 < len(n.Content); i += 2 {
				errs = append(errs, checkKeys(n.Content[i+1], t.Elem(), join(where, n.Content[i].Value))...)
			}
		}
	}
	return errs
}

func join(where, key string) string {
	if where == "" {
		return key
	}
	return where + "." + key
}

// yamlFields maps a struct's keys to their types, inline structs included.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		switch {
		case tag == "-" || !f.IsExported():
		case opts == "inline":
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
		case name != "":
			out[name] = f.Type
		}
	}
	return out
}

func unknownKey(k *yaml.Node, where string, fields map[string]reflect.Type) error {
	keys := make([]string, 0, len(fields))
	for name := range fields {
		keys = append(keys, name)
	}
	slices.Sort(keys)
	place := "at the top level"
	if where != "" {
		place = "in " + where
	}
	msg := fmt.Sprintf("line %d: unknown key %q %s", k.Line, k.Value, place)
	if near := suggest.Nearest(k.Value, keys, 2); near != "" {
		msg += fmt.Sprintf("; did you mean %q?", near)
	}
	return fmt.Errorf("%s (the keys there are: %s)", msg, strings.Join(keys, ", "))
}

// friendlyDecode rewrites yaml's type errors ("cannot unmarshal !!str
// `five` into int") into what to write.
func friendlyDecode(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	var errs []error
	for _, e := range te.Errors {
		e = strings.Replace(e, "cannot unmarshal !!str", "a string", 1)
		e = strings.Replace(e, "cannot unmarshal !!seq", "a list", 1)
		e = strings.Replace(e, "cannot unmarshal !!map", "a mapping", 1)
		e = strings.Replace(e, "cannot unmarshal !!int", "a number", 1)
		e = strings.Replace(e, "cannot unmarshal !!bool", "a boolean", 1)
		e = strings.Replace(e, " into ", " where this expects ", 1)
		e = strings.ReplaceAll(e, "testbench.", "")
		errs = append(errs, errors.New(e))
	}
	return errors.Join(errs...)
}
