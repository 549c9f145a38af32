package testbench

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tern-iot/tern/boards"
	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/hal/sim"
)

// defaults fills in what a scenario file may leave out; docs/testbench.md
// names each default. It runs before validate, which checks the values
// filled in.
func (sc *Scenario) defaults() {
	if sc.Fleet == "" {
		sc.Fleet = "testbench"
	}
	if sc.Broker == "" {
		sc.Broker = "embedded"
	}
	if sc.Timeout == 0 {
		sc.Timeout = Duration(3 * time.Minute)
	}
	if sc.Seed == 0 {
		sc.Seed = 1
	}
	for i := range sc.Agents {
		a := &sc.Agents[i]
		if a.Count == 0 {
			a.Count = 1
		}
		if a.Modules == nil {
			for name := range sc.Modules {
				a.Modules = append(a.Modules, name)
			}
			slices.Sort(a.Modules)
		}
	}
	for i := range sc.Timeline {
		st := &sc.Timeline[i]
		if st.Kill != nil && st.Kill.Count == 0 {
			st.Kill.Count = 1
		}
		if st.Expect != nil {
			st.Expect.defaults()
		}
		if st.Await != nil {
			st.Await.defaults()
		}
	}
	for i := range sc.Assertions {
		sc.Assertions[i].defaults()
	}
}

// defaults makes an assertion without a selector pick every agent.
func (a *Assertion) defaults() {
	for _, k := range assertionKinds {
		if sel := k.selector(a); sel != nil && *sel == (Selector{}) {
			sel.All = true
		}
	}
}

// validate checks what the types cannot, all at once, after defaults.
func (sc *Scenario) validate() error {
	var errs []error
	bad := func(line int, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if line > 0 {
			msg = fmt.Sprintf("line %d: %s", line, msg)
		}
		errs = append(errs, errors.New(msg))
	}
	if err := fleet.ValidID(sc.Fleet); err != nil {
		bad(0, "fleet: %v", err)
	}
	if _, err := jobTime(sc.Clock); err != nil {
		bad(0, "clock: %v", err)
	}
	switch sc.Broker {
	case "embedded", "mosquitto", "cluster":
	default:
		bad(0, "broker: %q is not a broker the testbench runs; write embedded, mosquitto or cluster", sc.Broker)
	}
	for name, m := range sc.Modules {
		if err := fleet.ValidID(name); err != nil {
			bad(0, "modules.%s: %v", name, err)
		}
		if err := m.ModuleSource.check(); err != nil {
			bad(0, "modules.%s: %v", name, err)
		}
	}
	kn, procs := sc.validateAgents(bad)
	if sc.Clock != "" && len(procs) > 0 {
		bad(0, "clock: %s: the scenario's clock moves the clock the testbench gives an in-process ternd; a process agent reads the host's clock; drop process: true or clock:", sc.Clock)
	}
	for i := range sc.Timeline {
		st := &sc.Timeline[i]
		if err := st.validate(kn); err != nil {
			bad(st.line, "timeline[%d]: %v", i, err)
		} else if err := st.needsBoard(sc, procs); err != nil {
			bad(st.line, "timeline[%d]: %v", i, err)
		}
	}
	if len(sc.Assertions) == 0 {
		bad(0, "assertions: none; a scenario without assertions cannot fail. Add e.g. - converged: {all: true, within: 30s}")
	}
	for i := range sc.Assertions {
		if err := sc.Assertions[i].validate(kn); err != nil {
			bad(sc.Assertions[i].line, "assertions[%d]: %v", i, err)
		}
	}
	return errors.Join(errs...)
}

// validateAgents checks the agent templates, and says which ids and
// groups there are and which agents are processes.
func (sc *Scenario) validateAgents(bad func(line int, format string, args ...any)) (kn known, procs map[string]bool) {
	if len(sc.Agents) == 0 {
		bad(0, "agents: none; add at least one, e.g. agents: [{name: th, count: 3}]")
	}
	kn = known{modules: sc.Modules, ids: map[string]bool{}, groups: map[string]bool{}, broker: sc.Broker}
	ids, groups := kn.ids, kn.groups
	procs = map[string]bool{}
	for i := range sc.Agents {
		a := &sc.Agents[i]
		where := fmt.Sprintf("agents[%d]", i)
		if a.Count < 0 {
			bad(0, "%s.count: %d is negative", where, a.Count)
		}
		if a.Name == "" {
			bad(0, "%s.name: required; agents are named NAME-001, NAME-002…", where)
		}
		for _, id := range a.IDs() {
			if err := fleet.ValidID(id); err != nil {
				bad(0, "%s.name: %v", where, err)
				break
			}
			if ids[id] {
				bad(0, "%s: agent %s is defined twice; give the templates different names", where, id)
			}
			ids[id] = true
		}
		for _, g := range a.Groups {
			if err := fleet.ValidID(g); err != nil {
				bad(0, "%s.groups: %v", where, err)
			}
			groups[g] = true
		}
		for _, m := range a.Modules {
			if _, ok := sc.Modules[m]; !ok {
				bad(0, "%s.modules: %q is not under modules:; define it there", where, m)
			}
		}
		for _, err := range a.Board.Validate(simBoardLines()) {
			bad(0, "%s.board.%v", where, err)
		}
		if a.Process {
			for _, p := range a.processProblems() {
				bad(p.line, "%s.%s", where, p.msg)
			}
			for _, id := range a.IDs() {
				procs[id] = true
			}
		}
	}
	return kn, procs
}

// outOfReach is why a process agent cannot have what needs the board in
// the testbench's memory.
const outOfReach = "a process agent's simulated board lives inside its ternd process (ternd.yaml's sim section), out of the testbench's reach"

type problem struct {
	line int
	msg  string
}

// processProblems lists what a process agent (process: true) cannot
// have, each with its line.
func (a *AgentSpec) processProblems() []problem {
	var out []problem
	line := func(key string) int {
		if l, ok := a.lines[key]; ok {
			return l
		}
		return a.line
	}
	drop := "; drop it or process: true"
	if len(a.Board.Buttons) > 0 {
		out = append(out, problem{line("board.buttons"), "board.buttons: a process agent cannot have buttons: " + outOfReach + ", and press drives lines of the testbench's board" + drop})
	}
	return out
}

// pick lists the agent ids a selector picks, as the runner will.
func (sc *Scenario) pick(s Selector) []string {
	var ids []string
	for _, a := range sc.Agents {
		for _, id := range a.IDs() {
			if s.All || s.Device == id || (s.Group != "" && slices.Contains(a.Groups, s.Group)) {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// needsBoard refuses a step that needs the board in the testbench's
// memory for a process agent.
func (st *Step) needsBoard(sc *Scenario, procs map[string]bool) error {
	var what, why string
	var sel Selector
	switch {
	case st.Fault != nil && !faultKinds[st.Fault.Kind].broker:
		what, sel, why = "fault "+st.Fault.Kind, st.Fault.Selector, faultKinds[st.Fault.Kind].unreachable
	case st.Press != nil:
		what, sel, why = "press", st.Press.Selector, outOfReach
	case st.MoveGPS != nil:
		what, sel, why = "move_gps", st.MoveGPS.Selector, outOfReach
	case st.AdvanceClock != nil:
		what, sel, why = "advance_clock", Selector{All: true}, hostClock
	default:
		return nil
	}
	var hit []string
	for _, id := range sc.pick(sel) {
		if procs[id] {
			hit = append(hit, id)
		}
	}
	if len(hit) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %s is a process agent (process: true): %s; pick in-process agents only, or drop process: true", what, list(hit, 3), why)
}

// IDs are the template's agent ids: NAME-001… (none for a negative
// Count, which validation refuses).
func (a AgentSpec) IDs() []string {
	width := max(3, len(strconv.Itoa(a.Count)))
	ids := make([]string, max(a.Count, 0))
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%0*d", a.Name, width, i+1)
	}
	return ids
}

func (m ModuleSource) check() error {
	n := 0
	for _, s := range []string{m.Plugin, m.Build, m.Wasm} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return errors.New("give exactly one of plugin (a plugin name, e.g. thermostat), build (a Go package directory) or wasm (a .wasm file)")
	}
	return nil
}

// simBoardLines are the sim board's GPIO lines.
func simBoardLines() []string {
	b, err := boards.Lookup("sim")
	if err != nil {
		panic(err) // the sim board is built in
	}
	return b.Lines()
}

func (s Selector) check(ids, groups map[string]bool, allowNone bool) error {
	n := 0
	if s.Device != "" {
		n++
		if !ids[s.Device] {
			return fmt.Errorf("device %s is not one of the agents (ids are NAME-001…)", s.Device)
		}
	}
	if s.Group != "" {
		n++
		if !groups[s.Group] {
			return fmt.Errorf("no agent is in group %s; add it to an agent's groups", s.Group)
		}
	}
	if s.All {
		n++
	}
	if n > 1 || (n == 0 && !allowNone) {
		return errors.New("pick the agents with exactly one of device: ID, group: NAME or all: true")
	}
	return nil
}

// known is what steps and assertions may name: the modules, and the
// agents' ids and groups.
type known struct {
	modules     map[string]ModuleSpec
	ids, groups map[string]bool
	broker      string
}

// stepActions are what a step can do, in the order messages name them:
// whether a step does it, and what doing it needs.
var stepActions = []struct {
	key   string
	does  func(*Step) bool
	check func(*Step, known) error
}{
	{"push", func(st *Step) bool { return st.Push != nil }, func(st *Step, kn known) error { return st.Push.check(kn) }},
	{"release", func(st *Step) bool { return st.Release != nil }, func(st *Step, kn known) error { return st.Release.check(kn) }},
	{"fault", func(st *Step) bool { return st.Fault != nil }, func(st *Step, kn known) error { return st.Fault.check(kn) }},
	{"press", func(st *Step) bool { return st.Press != nil }, func(st *Step, kn known) error { return st.Press.check(kn) }},
	{"move_gps", func(st *Step) bool { return st.MoveGPS != nil }, func(st *Step, kn known) error { return st.MoveGPS.check(kn) }},
	{"restart", func(st *Step) bool { return st.Restart != nil }, checkRestart},
	{"kill", func(st *Step) bool { return st.Kill != nil }, func(st *Step, kn known) error { return st.Kill.check(kn) }},
	{"job", func(st *Step) bool { return st.Job != nil }, func(st *Step, kn known) error { return st.Job.check("job", kn) }},
	{"job_edit", func(st *Step) bool { return st.JobEdit != nil }, func(st *Step, kn known) error { return st.JobEdit.check("job_edit", kn) }},
	{"job_cancel", func(st *Step) bool { return st.JobCancel != nil }, func(st *Step, kn known) error { return st.JobCancel.check("job_cancel", kn) }},
	{"advance_clock", func(st *Step) bool { return st.AdvanceClock != nil }, func(st *Step, _ known) error {
		if *st.AdvanceClock <= 0 {
			return errors.New("advance_clock: the clock moves forward: give a positive duration, e.g. 6h")
		}
		return nil
	}},
	{"rollout", func(st *Step) bool { return st.Rollout != nil }, func(st *Step, kn known) error { return st.Rollout.check(kn) }},
	{"rollout_watch", func(st *Step) bool { return st.RolloutWatch != nil }, func(st *Step, _ known) error { return st.RolloutWatch.check("rollout_watch") }},
	{"rollout_pause", func(st *Step) bool { return st.RolloutPause != nil }, func(st *Step, _ known) error { return st.RolloutPause.check("rollout_pause") }},
	{"rollout_resume", func(st *Step) bool { return st.RolloutResume != nil }, func(st *Step, _ known) error { return st.RolloutResume.check("rollout_resume") }},
	{"rollout_abort", func(st *Step) bool { return st.RolloutAbort != nil }, func(st *Step, _ known) error { return st.RolloutAbort.check("rollout_abort") }},
	{"expect", func(st *Step) bool { return st.Expect != nil }, func(st *Step, kn known) error { return st.Expect.validate(kn) }},
	{"await", func(st *Step) bool { return st.Await != nil }, func(st *Step, kn known) error { return st.Await.validate(kn) }},
}

func (r *RolloutStep) check(kn known) error {
	if err := fleet.ValidID(r.ID); err != nil {
		return fmt.Errorf("rollout: id: %w", err)
	}
	switch {
	case r.Module != "":
		if r.Device != "" || r.Group != "" || r.Target != nil {
			return errors.New("rollout: a module release (module:) or a target (device: or group:, target:), not both")
		}
		if err := (&ReleaseStep{Module: r.Module, ModuleSource: r.ModuleSource}).check(kn); err != nil {
			return fmt.Errorf("rollout: %w", err)
		}
	default:
		if err := (&PushStep{Device: r.Device, Group: r.Group, Target: r.Target}).check(kn); err != nil {
			return fmt.Errorf("rollout: %w (or module: NAME with its build:, plugin: or wasm:)", err)
		}
	}
	if _, err := r.policy(time.Now()); err != nil {
		return fmt.Errorf("rollout: %w", err)
	}
	return nil
}

func (r *RolloutCtlStep) check(key string) error {
	if err := fleet.ValidID(r.ID); err != nil {
		return fmt.Errorf("%s: id: %w", key, err)
	}
	return nil
}

func (st *Step) validate(kn known) error {
	var keys []string
	var does []func(*Step, known) error
	for _, a := range stepActions {
		keys = append(keys, a.key)
		if a.does(st) {
			does = append(does, a.check)
		}
	}
	if len(does) != 1 {
		return fmt.Errorf("a step does exactly one of %s", oneOf(keys))
	}
	return does[0](st, kn)
}

func (p *PushStep) check(kn known) error {
	if (p.Device == "") == (p.Group == "") {
		return errors.New("push: give device: ID or group: NAME")
	}
	if err := (Selector{Device: p.Device, Group: p.Group}).check(kn.ids, kn.groups, false); err != nil {
		return fmt.Errorf("push: %w", err)
	}
	if p.Target == nil {
		return errors.New(`push: target is required, e.g. target: {room: {temp: 22}}`)
	}
	return nil
}

func (r *ReleaseStep) check(kn known) error {
	if _, ok := kn.modules[r.Module]; !ok {
		return fmt.Errorf("release: module %q is not under modules:; agents only take releases of modules they run", r.Module)
	}
	if err := r.ModuleSource.check(); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	return nil
}

// faultKind is what the testbench knows of a kind of fault.
type faultKind struct {
	// broker: the fault is the broker's, not the agents': it takes no
	// selector, and needs no board.
	broker bool
	// needs are what it needs besides its kind and selector, in the
	// order they are checked.
	needs []faultNeed
	// unreachable is why a process agent cannot have it.
	unreachable string
}

// faultNeed checks a field a kind of fault needs.
type faultNeed func(*FaultStep) error

// Why a process agent cannot have a fault: the testbench reaches what the
// fault acts on only in an in-process agent.
const (
	dialsItself = "the cut goes through the dialer the testbench gives an in-process ternd (daemon.Hardware.Dial); a ternd process dials the broker itself"
	hostClock   = "the jump moves the clock the testbench gives an in-process ternd (daemon.Hardware.Clock); a ternd process reads the host's clock"
	wrapsDevice = outOfReach + ", and the fault wraps a chip or serial device of the testbench's board"
)

// faultKinds are the faults the testbench injects (timeline.go's fault).
var faultKinds = map[string]faultKind{
	"broker_down":     {broker: true, needs: []faultNeed{needFor}},
	"node_down":       {broker: true, needs: []faultNeed{needFor, needNode}},
	"network_cut":     {unreachable: dialsItself},
	"network_restore": {unreachable: dialsItself},
	"clock_jump":      {needs: []faultNeed{needBy}, unreachable: hostClock},
	"clock_unsynced":  {unreachable: hostClock},
	"sensor_stuck":    {needs: []faultNeed{needChip}, unreachable: wrapsDevice},
	"sensor_noisy":    {needs: []faultNeed{needChip, needAmplitude}, unreachable: wrapsDevice},
	"i2c_nack":        {needs: []faultNeed{needChip}, unreachable: wrapsDevice},
	"i2c_bus_error":   {needs: []faultNeed{needChip}, unreachable: wrapsDevice},
	"serial_silent":   {needs: []faultNeed{needPort}, unreachable: wrapsDevice},
	"serial_garbage":  {needs: []faultNeed{needPort}, unreachable: wrapsDevice},
}

func needFor(f *FaultStep) error {
	if f.For == 0 {
		return fmt.Errorf("fault: %s needs for: (how long the broker stays down)", f.Kind)
	}
	return nil
}

func needNode(f *FaultStep) error {
	if f.Node < 1 || f.Node > clusterNodes {
		return fmt.Errorf("fault: %s needs node: the cluster node to kill, 1 to %d", f.Kind, clusterNodes)
	}
	return nil
}

func needBy(f *FaultStep) error {
	if f.By == 0 {
		return fmt.Errorf("fault: %s needs by: (e.g. -1h or 36h)", f.Kind)
	}
	return nil
}

func needChip(f *FaultStep) error {
	if _, _, _, err := sim.ParseAt(f.Chip); err != nil {
		return fmt.Errorf("fault: %s needs chip: bus:address: %w", f.Kind, err)
	}
	return nil
}

func needAmplitude(f *FaultStep) error {
	if f.Amplitude <= 0 {
		return fmt.Errorf("fault: %s needs amplitude: (°C, e.g. 0.5)", f.Kind)
	}
	return nil
}

func needPort(f *FaultStep) error {
	if f.Port == "" {
		return fmt.Errorf("fault: %s needs port: NAME, e.g. serial0", f.Kind)
	}
	return nil
}

func (f *FaultStep) check(kn known) error {
	kind, ok := faultKinds[f.Kind]
	if !ok {
		kinds := make([]string, 0, len(faultKinds))
		for k := range faultKinds {
			kinds = append(kinds, k)
		}
		slices.Sort(kinds)
		return fmt.Errorf("fault: kind %q is not a fault the testbench injects; write one of %s", f.Kind, strings.Join(kinds, ", "))
	}
	if f.Kind == "node_down" && kn.broker != "cluster" {
		return fmt.Errorf("fault: node_down kills a node of a cluster; write broker: cluster (the scenario's broker is %s)", cmp.Or(kn.broker, "embedded"))
	}
	if f.Node != 0 && f.Kind != "node_down" {
		return fmt.Errorf("fault: node: is for node_down; %s does not take it", f.Kind)
	}
	if kind.broker {
		if f.Selector != (Selector{}) {
			return fmt.Errorf("fault: %s takes the broker down for everyone; remove device, group and all", f.Kind)
		}
	} else if err := f.Selector.check(kn.ids, kn.groups, false); err != nil {
		return fmt.Errorf("fault: %w", err)
	}
	for _, need := range kind.needs {
		if err := need(f); err != nil {
			return err
		}
	}
	return nil
}

func (p *PressStep) check(kn known) error {
	if err := p.Selector.check(kn.ids, kn.groups, false); err != nil {
		return fmt.Errorf("press: %w", err)
	}
	if p.Line == "" {
		return errors.New("press: line is required (a button's line under board.buttons)")
	}
	return nil
}

func (g *GPSStep) check(kn known) error {
	if err := g.Selector.check(kn.ids, kn.groups, false); err != nil {
		return fmt.Errorf("move_gps: %w", err)
	}
	return nil
}

func checkRestart(st *Step, kn known) error {
	if err := st.Restart.check(kn.ids, kn.groups, false); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	return nil
}

// check checks a job step of kind (job, job_edit, job_cancel).
func (j *JobStep) check(kind string, kn known) error {
	if err := fleet.ValidID(j.ID); err != nil {
		return fmt.Errorf("%s: id: %w", kind, err)
	}
	for _, t := range []struct{ name, v string }{{"at", j.At}, {"deadline", j.Deadline}} {
		if _, err := jobTime(t.v); err != nil {
			return fmt.Errorf("%s %s: %s: %w", kind, j.ID, t.name, err)
		}
	}
	if kind != "job" {
		if j.Device != "" || j.Group != "" {
			return fmt.Errorf("%s %s: the job keeps its device or group; leave them out", kind, j.ID)
		}
		return nil
	}
	switch {
	case (j.Device == "") == (j.Group == ""):
		return fmt.Errorf("job %s: give device: or group:", j.ID)
	case j.Device != "" && !kn.ids[j.Device]:
		return fmt.Errorf("job %s: no agent %q", j.ID, j.Device)
	case j.Group != "" && !kn.groups[j.Group]:
		return fmt.Errorf("job %s: no agent is in group %q", j.ID, j.Group)
	case j.Module == "" || j.Command == "":
		return fmt.Errorf("job %s: module: and command: name what it runs", j.ID)
	}
	if _, ok := kn.modules[j.Module]; !ok {
		return fmt.Errorf("job %s: module %q is not one of the scenario's modules", j.ID, j.Module)
	}
	return nil
}

// jobTime reads a job step's time: RFC 3339, or empty.
func jobTime(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: write an RFC 3339 time on the scenario's clock, e.g. 2026-12-07T04:00:00Z", v)
	}
	return t, nil
}

func (k *KillStep) check(kn known) error {
	if err := k.Selector.check(kn.ids, kn.groups, false); err != nil {
		return fmt.Errorf("kill: %w", err)
	}
	if k.Count < 0 || k.Over < 0 || k.Down < 0 {
		return errors.New("kill: count, over and down must not be negative")
	}
	return nil
}

// assertionKinds are what an assertion can check, in the order messages
// name them: the kind's selector (nil if the assertion is not of the
// kind), and what else the kind needs (nil: nothing).
var assertionKinds = []struct {
	key      string
	selector func(*Assertion) *Selector
	needs    func(*Assertion) error
}{
	{"converged", func(a *Assertion) *Selector { return selectorOf(a.Converged) }, nil},
	{"not_converged", func(a *Assertion) *Selector { return selectorOf(a.NotConverged) }, func(a *Assertion) error {
		if a.NotConverged.For == 0 {
			return errors.New("not_converged needs for: (how long they must stay unconverged)")
		}
		return nil
	}},
	{"state", func(a *Assertion) *Selector { return selectorOf(a.State) }, func(a *Assertion) error {
		if !strings.HasPrefix(a.State.Path, "/") {
			return fmt.Errorf("state: path %q is not a JSON Pointer; write e.g. /room/temp", a.State.Path)
		}
		return nil
	}},
	{"event", func(a *Assertion) *Selector { return selectorOf(a.Event) }, func(a *Assertion) error {
		if a.Event.Kind == "" {
			return errors.New("event: kind is required, e.g. converged, task.done, module.installed")
		}
		return nil
	}},
	{"nothing_lost", func(a *Assertion) *Selector { return selectorOf(a.NothingLost) }, nil},
	{"rolled_back", func(a *Assertion) *Selector { return selectorOf(a.RolledBack) }, func(a *Assertion) error {
		if a.RolledBack.Module == "" {
			return errors.New("rolled_back: module is required")
		}
		return nil
	}},
	{"job", func(a *Assertion) *Selector { return selectorOf(a.Job) }, func(a *Assertion) error {
		if a.Job.ID == "" || a.Job.Phase == "" {
			return errors.New("job: id: and phase: are required, e.g. id: upgrade, phase: succeeded")
		}
		return nil
	}},
	{"rollout", func(a *Assertion) *Selector { return selectorOf(a.Rollout) }, func(a *Assertion) error {
		c := a.Rollout
		switch {
		case c.ID == "":
			return errors.New("rollout: id: is required")
		case c.Phase == "" && c.ModuleVersion == "" && c.AppliedWithin == 0:
			return errors.New("rollout: give phase: (e.g. succeeded), module: with module_version:, or applied_within:")
		case (c.Module == "") != (c.ModuleVersion == ""):
			return errors.New("rollout: module: and module_version: go together")
		case (c.AppliedAfter == "") != (c.AppliedWithin == 0):
			return errors.New("rollout: applied_after: (when the window opens, on the scenario's clock) and applied_within: go together")
		}
		if c.AppliedAfter != "" {
			if _, err := time.Parse(time.RFC3339, c.AppliedAfter); err != nil {
				return fmt.Errorf("rollout: applied_after: %q: write RFC 3339, e.g. 2026-12-07T02:00:00Z", c.AppliedAfter)
			}
		}
		return nil
	}},
}

// selects is a check that picks agents: every assertion kind embeds a
// Selector.
type selects interface {
	comparable
	selector() *Selector
}

func (s *Selector) selector() *Selector { return s }

// selectorOf is c's selector; nil if c is (the assertion is not of c's
// kind).
func selectorOf[C selects](c C) *Selector {
	var none C
	if c == none {
		return nil
	}
	return c.selector()
}

func (a *Assertion) validate(kn known) error {
	var keys []string
	var sel *Selector
	n := 0
	for _, k := range assertionKinds {
		keys = append(keys, k.key)
		s := k.selector(a)
		if s == nil {
			continue
		}
		n, sel = n+1, s
		if k.needs == nil {
			continue
		}
		if err := k.needs(a); err != nil {
			return err
		}
	}
	if n != 1 {
		return fmt.Errorf("an assertion is exactly one of %s", oneOf(keys))
	}
	return sel.check(kn.ids, kn.groups, false)
}

// oneOf lists choices as "a, b or c".
func oneOf(choices []string) string {
	last := len(choices) - 1
	return strings.Join(choices[:last], ", ") + " or " + choices[last]
}
