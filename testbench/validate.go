package testbench

import (
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

// validate checks what the types cannot, all at once.
func (sc *Scenario) validate() error {
	var errs []error
	bad := func(line int, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if line > 0 {
			msg = fmt.Sprintf("line %d: %s", line, msg)
		}
		errs = append(errs, errors.New(msg))
	}
	if sc.Fleet == "" {
		sc.Fleet = "testbench"
	}
	if err := fleet.ValidID(sc.Fleet); err != nil {
		bad(0, "fleet: %v", err)
	}
	switch sc.Broker {
	case "":
		sc.Broker = "embedded"
	case "embedded", "mosquitto":
	default:
		bad(0, "broker: %q is not a broker the testbench runs; write embedded or mosquitto", sc.Broker)
	}
	if sc.Timeout == 0 {
		sc.Timeout = Duration(3 * time.Minute)
	}
	if sc.Seed == 0 {
		sc.Seed = 1
	}
	for name, m := range sc.Modules {
		if err := fleet.ValidID(name); err != nil {
			bad(0, "modules.%s: %v", name, err)
		}
		if err := m.ModuleSource.check(); err != nil {
			bad(0, "modules.%s: %v", name, err)
		}
	}
	if len(sc.Agents) == 0 {
		bad(0, "agents: none; add at least one, e.g. agents: [{name: th, count: 3}]")
	}
	ids := map[string]bool{}
	groups := map[string]bool{}
	procs := map[string]bool{} // process agents
	for i := range sc.Agents {
		a := &sc.Agents[i]
		where := fmt.Sprintf("agents[%d]", i)
		if a.Count == 0 {
			a.Count = 1
		}
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
		if a.Modules == nil {
			for name := range sc.Modules {
				a.Modules = append(a.Modules, name)
			}
			slices.Sort(a.Modules)
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
	for i := range sc.Timeline {
		st := &sc.Timeline[i]
		if err := st.validate(sc, ids, groups); err != nil {
			bad(st.line, "timeline[%d]: %v", i, err)
		} else if err := st.needsBoard(sc, procs); err != nil {
			bad(st.line, "timeline[%d]: %v", i, err)
		}
	}
	if len(sc.Assertions) == 0 {
		bad(0, "assertions: none; a scenario without assertions cannot fail. Add e.g. - converged: {all: true, within: 30s}")
	}
	for i := range sc.Assertions {
		if err := sc.Assertions[i].validate(ids, groups); err != nil {
			bad(sc.Assertions[i].line, "assertions[%d]: %v", i, err)
		}
	}
	return errors.Join(errs...)
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
	case st.Fault != nil && st.Fault.Kind != "broker_down":
		what, sel = "fault "+st.Fault.Kind, st.Fault.Selector
		switch st.Fault.Kind {
		case "network_cut":
			why = "the cut goes through the dialer the testbench gives an in-process ternd (daemon.Hardware.Dial); a ternd process dials the broker itself"
		case "clock_jump":
			why = "the jump moves the clock the testbench gives an in-process ternd (daemon.Hardware.Clock); a ternd process reads the host's clock"
		default:
			why = outOfReach + ", and the fault wraps a chip or serial device of the testbench's board"
		}
	case st.Press != nil:
		what, sel, why = "press", st.Press.Selector, outOfReach
	case st.MoveGPS != nil:
		what, sel, why = "move_gps", st.MoveGPS.Selector, outOfReach
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

// IDs are the template's agent ids: NAME-001…
func (a AgentSpec) IDs() []string {
	width := max(3, len(strconv.Itoa(a.Count)))
	ids := make([]string, a.Count)
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

// faultKinds lists the faults and whether they need a chip or a port.
var faultKinds = map[string]string{
	"broker_down": "", "network_cut": "", "clock_jump": "",
	"sensor_stuck": "chip", "sensor_noisy": "chip", "i2c_nack": "chip", "i2c_bus_error": "chip",
	"serial_silent": "port", "serial_garbage": "port",
}

func (st *Step) validate(sc *Scenario, ids, groups map[string]bool) error {
	n := 0
	for _, set := range []bool{st.Push != nil, st.Release != nil, st.Fault != nil, st.Press != nil, st.MoveGPS != nil, st.Restart != nil, st.Kill != nil, st.Expect != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return errors.New("a step does exactly one of push, release, fault, press, move_gps, restart, kill or expect")
	}
	switch {
	case st.Push != nil:
		p := st.Push
		if (p.Device == "") == (p.Group == "") {
			return errors.New("push: give device: ID or group: NAME")
		}
		if err := (Selector{Device: p.Device, Group: p.Group}).check(ids, groups, false); err != nil {
			return fmt.Errorf("push: %w", err)
		}
		if p.Target == nil {
			return errors.New(`push: target is required, e.g. target: {room: {temp: 22}}`)
		}
	case st.Release != nil:
		r := st.Release
		if _, ok := sc.Modules[r.Module]; !ok {
			return fmt.Errorf("release: module %q is not under modules:; agents only take releases of modules they run", r.Module)
		}
		if err := r.ModuleSource.check(); err != nil {
			return fmt.Errorf("release: %w", err)
		}
	case st.Fault != nil:
		f := st.Fault
		need, ok := faultKinds[f.Kind]
		if !ok {
			kinds := make([]string, 0, len(faultKinds))
			for k := range faultKinds {
				kinds = append(kinds, k)
			}
			slices.Sort(kinds)
			return fmt.Errorf("fault: kind %q is not a fault the testbench injects; write one of %s", f.Kind, strings.Join(kinds, ", "))
		}
		if f.Kind == "broker_down" {
			if f.Device != "" || f.Group != "" || f.All {
				return errors.New("fault: broker_down takes the broker down for everyone; remove device, group and all")
			}
			if f.For == 0 {
				return errors.New("fault: broker_down needs for: (how long the broker stays down)")
			}
		} else if err := f.Selector.check(ids, groups, false); err != nil {
			return fmt.Errorf("fault: %w", err)
		}
		switch need {
		case "chip":
			if _, _, _, err := sim.ParseAt(f.Chip); err != nil {
				return fmt.Errorf("fault: %s needs chip: bus:address: %w", f.Kind, err)
			}
		case "port":
			if f.Port == "" {
				return fmt.Errorf("fault: %s needs port: NAME, e.g. serial0", f.Kind)
			}
		}
		if f.Kind == "clock_jump" && f.By == 0 {
			return errors.New("fault: clock_jump needs by: (e.g. -1h or 36h)")
		}
		if f.Kind == "sensor_noisy" && f.Amplitude <= 0 {
			return errors.New("fault: sensor_noisy needs amplitude: (°C, e.g. 0.5)")
		}
	case st.Press != nil:
		if err := st.Press.Selector.check(ids, groups, false); err != nil {
			return fmt.Errorf("press: %w", err)
		}
		if st.Press.Line == "" {
			return errors.New("press: line is required (a button's line under board.buttons)")
		}
	case st.MoveGPS != nil:
		if err := st.MoveGPS.Selector.check(ids, groups, false); err != nil {
			return fmt.Errorf("move_gps: %w", err)
		}
	case st.Restart != nil:
		if err := st.Restart.check(ids, groups, false); err != nil {
			return fmt.Errorf("restart: %w", err)
		}
	case st.Kill != nil:
		k := st.Kill
		if err := k.Selector.check(ids, groups, false); err != nil {
			return fmt.Errorf("kill: %w", err)
		}
		if k.Count == 0 {
			k.Count = 1
		}
		if k.Count < 0 || k.Over < 0 || k.Down < 0 {
			return errors.New("kill: count, over and down must not be negative")
		}
	case st.Expect != nil:
		return st.Expect.validate(ids, groups)
	}
	return nil
}

func (a *Assertion) validate(ids, groups map[string]bool) error {
	var sel *Selector
	n := 0
	if c := a.Converged; c != nil {
		n, sel = n+1, &c.Selector
	}
	if c := a.NotConverged; c != nil {
		n, sel = n+1, &c.Selector
		if c.For == 0 {
			return errors.New("not_converged needs for: (how long they must stay unconverged)")
		}
	}
	if c := a.State; c != nil {
		n, sel = n+1, &c.Selector
		if !strings.HasPrefix(c.Path, "/") {
			return fmt.Errorf("state: path %q is not a JSON Pointer; write e.g. /room/temp", c.Path)
		}
	}
	if c := a.Event; c != nil {
		n, sel = n+1, &c.Selector
		if c.Kind == "" {
			return errors.New("event: kind is required, e.g. converged, task.done, module.installed")
		}
	}
	if c := a.NothingLost; c != nil {
		n, sel = n+1, &c.Selector
	}
	if c := a.RolledBack; c != nil {
		n, sel = n+1, &c.Selector
		if c.Module == "" {
			return errors.New("rolled_back: module is required")
		}
	}
	if n != 1 {
		return errors.New("an assertion is exactly one of converged, not_converged, state, event, nothing_lost or rolled_back")
	}
	if *sel == (Selector{}) {
		sel.All = true // no selector: every agent
	}
	return sel.check(ids, groups, false)
}
