// Package serial is the contract for serial ports: open a port the board
// names ("ttyS0", "ttyUSB0") at a baud rate, read with a timeout, write,
// close. Backends: hal/sim (simulated devices); the real backend
// (go.bug.st/serial, over real ports and pseudo-terminals) arrives with the
// hardware issue.
package serial
