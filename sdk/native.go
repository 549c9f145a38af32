//go:build !wasip1

package sdk

import (
	"errors"
	"time"

	"github.com/tern-iot/tern/sdk/internal/native"
)

// Outside a wasm module, hardware and state calls go to the host package
// sdktest installs (a board of hal's, usually hal/sim's), and fail with
// errNoHost when there is none, so that module logic compiles and can be
// tested natively.
var errNoHost = errors.New("sdk: hardware is reachable only inside a wasm module run by ternd, or under package sdktest")

func init() { native.Dispatch = dispatch }

func host() *native.Host { return native.Current() }

func gpioWrite(line string, high bool) error {
	if h := host(); h != nil && h.GPIOWrite != nil {
		return h.GPIOWrite(line, high)
	}
	return errNoHost
}

func gpioRead(line string) (bool, error) {
	if h := host(); h != nil && h.GPIORead != nil {
		return h.GPIORead(line)
	}
	return false, errNoHost
}

func logf(level int32, msg string) {
	if h := host(); h != nil && h.Log != nil {
		h.Log(level, msg)
	}
}

func i2cTx(bus string, addr uint16, w, r []byte) error {
	if h := host(); h != nil && h.I2CTx != nil {
		return h.I2CTx(bus, addr, w, r)
	}
	return errNoHost
}

func gpioIn(line string, pull uint32) error {
	if h := host(); h != nil && h.GPIOIn != nil {
		return h.GPIOIn(line, pull)
	}
	return errNoHost
}

func gpioWaitEdge(line string, timeout time.Duration) (bool, error) {
	if h := host(); h != nil && h.GPIOWaitEdge != nil {
		return h.GPIOWaitEdge(line, timeout)
	}
	return false, errNoHost
}

func serialOpen(name string, baud int) (int32, error) {
	if h := host(); h != nil && h.SerialOpen != nil {
		return h.SerialOpen(name, baud)
	}
	return 0, errNoHost
}

func serialWrite(handle int32, b []byte) (int, error) {
	if h := host(); h != nil && h.SerialWrite != nil {
		return h.SerialWrite(handle, b)
	}
	return 0, errNoHost
}

func serialRead(handle int32, b []byte, timeout time.Duration) (int, error) {
	if h := host(); h != nil && h.SerialRead != nil {
		return h.SerialRead(handle, b, timeout)
	}
	return 0, errNoHost
}

func serialClose(handle int32) error {
	if h := host(); h != nil && h.SerialClose != nil {
		return h.SerialClose(handle)
	}
	return errNoHost
}

func stateRead(path string, arena *[]byte) ([]byte, error) {
	if h := host(); h != nil && h.StateRead != nil {
		b, err := h.StateRead(path)
		if err != nil {
			return nil, err
		}
		start := len(*arena)
		*arena = append(*arena, b...)
		return (*arena)[start:len(*arena):len(*arena)], nil
	}
	return nil, errNoHost
}
