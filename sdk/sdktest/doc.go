//go:build !wasip1

// Package sdktest runs a Go module's jobs and sensors natively, in its own
// tests, against a board of hal's (hal/sim's simulated lines, I2C chips and
// serial ports, or real ones): the test seam module authors lack when the
// module can run only under ternd.
//
// A module is a main package whose init registers its jobs and sensors
// with package sdk; its tests, in the same package, make a [Module] and
// call it as ternd would:
//
//	m, err := sdktest.New(sdktest.Board{GPIO: sim.NewGPIO("GPIO17")},
//		map[string]any{"lines": map[string]string{"heater": "GPIO17"}})
//	...
//	defer m.Close()
//	t, err := m.Try("set", "/relays/heater", true) // the planner's question
//	err = m.Run("set", "/relays/heater", true)     // the task
//	v, err := m.Sense("relays")                    // the sensor
//
// Calls travel as they do under ternd: encoded in the call format,
// dispatched by the SDK's own entry point, decoded again; hardware calls
// are refused while planning (sdk.ErrnoPlanning) and a missing line or bus
// is sdk.ErrnoNoLine. The module's package variables live as long as the
// test binary, as in one instance that is never restarted: a test that
// needs a fresh instance resets them itself. Grants, deadlines and memory limits are ternd's and
// are not modelled: test those under ternd (the testbench).
package sdktest
