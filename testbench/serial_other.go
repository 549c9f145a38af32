//go:build !linux

package testbench

import (
	"errors"

	"github.com/tern-iot/tern/hal/serial"
	"github.com/tern-iot/tern/hal/sim"
)

func openSerial(SerialSpec, *serialDevice) (string, func() error, error) {
	return "", nil, errors.New("testbench: simulated serial devices need pseudo-terminals, which the testbench opens on Linux only")
}

func serialOpener(map[string]string) serial.Opener { return sim.NewSerial() }
