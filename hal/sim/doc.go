// Package sim is the simulated hardware backend: GPIO lines that live in
// memory, for unit tests, the demo and the testbench.
//
// The agent sees a *GPIO through the gpio contract (gpio.Lookup, gpio.Pin),
// exactly as it would see a real backend. A test, or the testbench, stands
// outside the board and acts as the world wired to it:
//
//   - Drive puts an external signal on a line, and Release removes it;
//   - Level probes a line, as a multimeter would see it;
//   - Writes counts the Out calls on a line, so a test can prove that a job
//     did, or did not, touch it.
//
// What a simulated line reads, in order: an output reads the level it
// drives; an input reads the external signal if one is driven on it, else its
// pull level (PullUp: High, PullDown: Low), and a floating input (PullNone,
// nothing driving) reads Low. A new line is an input with PullNone.
//
// Everything is safe for concurrent use.
package sim
