// Package testbound is how long a test waits before it calls a wait a
// hang. A deadline in a test is a bound on a hang, never a speed claim
// (STYLE.md): tests wait for the event, and the bound only decides when to
// give up and say what never came. The bounds are generous because `make
// test` runs under the race detector on laptops with a browser open and on
// shared CI runners (`make test-load` runs it under stress-ng on every
// core); a passing test never waits for them.
//
// TERN_TEST_SCALE multiplies every bound, for machines slower still (a Pi
// Zero, qemu-user): TERN_TEST_SCALE=4 make test.
package testbound

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// Hang is the bound on one wait for something that should come soon: a
// message through a broker, a module compiled and loaded under the race
// detector, an agent converging.
var Hang = Scale(2 * time.Minute)

// Scale returns d multiplied by TERN_TEST_SCALE (default 1; values below
// 1 or not numbers are ignored).
func Scale(d time.Duration) time.Duration {
	f, err := strconv.ParseFloat(os.Getenv("TERN_TEST_SCALE"), 64)
	if err != nil || f < 1 {
		return d
	}
	return time.Duration(float64(d) * f)
}

// WaitFor polls cond until it holds, and fails t, naming what never came,
// if it does not within Hang.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(Hang); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", Hang, what)
		}
	}
}
