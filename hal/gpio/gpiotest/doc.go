// Package gpiotest checks that a GPIO backend keeps the gpio contract.
//
// Every backend of package gpio runs Conformance in its tests, the simulated
// one on made-up lines and the real ones on a test rig's free lines, the way
// every fs.FS runs testing/fstest.TestFS:
//
//	func TestConformance(t *testing.T) {
//		gpiotest.Conformance(t, sim.NewGPIO("GPIO17", "GPIO27"), []string{"GPIO17", "GPIO27"})
//	}
//
// Abilities that not every backend can show are optional, discovered by type
// assertion on the Lookup: PullSimulator for pulls, io.Closer for ErrClosed.
package gpiotest
