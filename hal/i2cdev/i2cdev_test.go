package i2cdev_test

import (
	"os"
	"testing"

	"github.com/tern-iot/tern/hal/i2c/i2ctest"
	"github.com/tern-iot/tern/hal/i2cdev"
)

// On a rig with a 24C02 EEPROM at 0x50 on i2c1 (and nothing at 0x51), the
// real backend runs the conformance suite.
func TestConformance(t *testing.T) {
	if _, err := os.Stat("/dev/i2c-1"); err != nil {
		t.Skipf("no /dev/i2c-1 on this machine (%v): the real I2C backend can only run on a board with I2C enabled; the simulated bus's conformance runs in hal/sim", err)
	}
	if os.Getenv("TERN_TEST_EEPROM") == "" {
		t.Skip("set TERN_TEST_EEPROM=1 on a rig with a 24C02 at i2c1:0x50: the suite writes to it")
	}
	i2ctest.Conformance(t, &i2cdev.Buses{}, "i2c1", 0x50, 0x51)
}

func TestMissingBus(t *testing.T) {
	if _, err := (&i2cdev.Buses{}).Bus("i2c99"); err == nil {
		t.Fatal("a bus that does not exist was opened")
	}
	if _, err := (&i2cdev.Buses{}).Bus("spi0"); err == nil {
		t.Fatal("a name that is no I2C bus was accepted")
	}
}
