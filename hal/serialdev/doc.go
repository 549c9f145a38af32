// Package serialdev is the real serial backend: ports opened through
// go.bug.st/serial (pure Go, static), by the board's names ("serial0" →
// /dev/serial0) or by device path. Its tests run the serial conformance
// suite over a real pseudo-terminal, with a simulated device on the far end.
package serialdev
