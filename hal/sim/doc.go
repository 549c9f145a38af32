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
// Beside the lines, it simulates I2C chips at register level (TMP102,
// PCF8574, 24C02) and serial devices (an NMEA GPS, an AT modem, on a
// pseudo-terminal or in memory), and the faults the field produces:
// FaultyDevice makes a chip stick, stop acknowledging, see bus errors or
// read noisy, and powers it from a line so that a power cycle recovers it;
// FaultySerial makes a serial device silent or talk garbage. Watch lets a
// simulated device follow a line. Room is a small physics model: a room a
// heater line warms and a TMP102 reads, for thermostat scenarios.
//
// BoardSpec describes what is wired to a simulated board (chips, rooms,
// serial devices, buttons, wires) and NewBoard builds it. It is the one
// format for a simulated board: ternd.yaml's sim section and the
// testbench's agents (board:) are both a BoardSpec, validated by its
// Validate.
//
// Everything is safe for concurrent use.
package sim
