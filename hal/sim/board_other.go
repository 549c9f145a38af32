//go:build !linux

package sim

import "errors"

func (d *SerialDevice) open(SerialSpec) (string, error) {
	return "", errors.New("simulated serial devices need pseudo-terminals, which sim opens on Linux only")
}
