// Package testbench is tern's hardware-in-the-loop testbench: simulated
// boards and devices, agents against a real broker, scenarios and faults.
//
// Today it holds the end-to-end tests of the walking skeleton: an operator
// pushes a target over MQTT (through the embedded broker and through a real
// Mosquitto), a ternd on a simulated board plans and runs the relay module
// in the Wasm sandbox, and the operator sees the device report the target
// reached. Scenarios with many agents and injected faults come next.
package testbench
