//go:build !wasip1

package sdk

import (
	"errors"
	"time"
)

// errNoHost is what hardware calls return outside a wasm module, so that
// module logic compiles and can be tested natively.
var errNoHost = errors.New("sdk: hardware is reachable only inside a wasm module run by ternd")

func gpioWrite(string, bool) error  { return errNoHost }
func gpioRead(string) (bool, error) { return false, errNoHost }
func logf(int32, string)            {}

func i2cTx(string, uint16, []byte, []byte) error { return errNoHost }

func gpioIn(string, uint32) error                      { return errNoHost }
func gpioWaitEdge(string, time.Duration) (bool, error) { return false, errNoHost }

func serialOpen(string, int) (int32, error)                { return 0, errNoHost }
func serialWrite(int32, []byte) (int, error)               { return 0, errNoHost }
func serialRead(int32, []byte, time.Duration) (int, error) { return 0, errNoHost }
func serialClose(int32) error                              { return errNoHost }

func stateRead(string, *[]byte) ([]byte, error) { return nil, errNoHost }
