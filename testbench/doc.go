// Package testbench is tern's hardware-in-the-loop testbench: real ternd
// agents on simulated boards, against a real broker, under the faults the
// field produces, with a verdict.
//
// A scenario file (YAML, [Scenario], reference in docs/testbench.md)
// describes the boards and what is wired to them (I2C chips, serial
// devices on pseudo-terminals, buttons, jumpers), a room heated by a relay
// and read by a sensor, how many agents and in which groups, the broker
// (the embedded one or a Mosquitto the testbench starts), the modules, a
// timeline of operator actions (targets, module releases), world events
// (button presses, a GPS moving) and faults, and the assertions. [Load]
// parses it strictly: an unknown key is refused with its line and the keys
// there are.
//
// [Run] runs it: it builds the modules (internal/wasmbuild), starts the
// broker and the agents, waits until every agent has reported, then plays
// the timeline and checks the assertions, each polled until it holds or its
// time is up, each with a reason that says what was expected and what was
// seen. [WriteReport] and [WriteJUnit] print the [Result]; `tern testbench
// run` is the command.
//
// Agents are an interface ([Agent]: start, stop, restart, id), so agents
// run as separate ternd processes ([ProcessAgent], process: true in a
// scenario, their board in ternd's sim section) fit beside the in-process
// ones ([InProcess]); hardware faults need the agent's simulated [Board],
// an optional ability ([Boarded]), and a kill step's power cut needs
// [Killer] (an in-process agent is stopped cleanly instead). The board's wrappers that inject faults are
// in hal/sim (sim.FaultyDevice, sim.FaultySerial); the network cut goes
// through daemon.Hardware.Dial ([Link]) and the clock jump through
// daemon.Hardware.Clock ([Clock]).
//
// The package's tests hold the end-to-end tests of the walking skeleton too:
// an operator pushes a target over MQTT (through the embedded broker and
// through a real Mosquitto) and a ternd on a simulated board converges.
//
// Subpackage modules holds the module versions the standard scenarios
// release; scenarios/ holds the standard suite, which `make testbench`
// runs.
package testbench
