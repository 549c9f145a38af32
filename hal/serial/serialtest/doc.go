// Package serialtest checks that a serial backend keeps the serial contract.
// It needs a port whose far end echoes what is written (hal/sim provides one
// in memory and one over a real pseudo-terminal).
package serialtest
