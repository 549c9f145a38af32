package gpiodev_test

import (
	"os"
	"testing"

	"github.com/tern-iot/tern/boards"
	"github.com/tern-iot/tern/hal/gpio/gpiotest"
	"github.com/tern-iot/tern/hal/gpiodev"
)

// On a board (or a rig with a gpio-sim or gpio-mockup chip), the real
// backend runs the conformance suite on two free lines named in
// TERN_TEST_GPIO_LINES (default GPIO5,GPIO6 on the board's chip).
func TestConformance(t *testing.T) {
	b, err := boards.Lookup(envOr("TERN_TEST_BOARD", "rpi4"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/dev/" + b.GPIOChip); err != nil {
		t.Skipf("no /dev/%s on this machine (%v): the real GPIO backend can only run on a board; the simulated backend's conformance runs in hal/sim", b.GPIOChip, err)
	}
	chip, err := gpiodev.Open(b.GPIOChip, b.GPIOLabel, func(name string) (int, error) {
		p, err := b.Line(name)
		return p.Line, err
	})
	if err != nil {
		t.Fatal(err)
	}
	gpiotest.Conformance(t, chip, []string{"GPIO5", "GPIO6"})
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
