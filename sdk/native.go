//go:build !wasip1

package sdk

import "errors"

// errNoHost is what hardware calls return outside a wasm module, so that
// module logic compiles and can be tested natively.
var errNoHost = errors.New("sdk: hardware is reachable only inside a wasm module run by ternd")

func gpioWrite(string, bool) error  { return errNoHost }
func gpioRead(string) (bool, error) { return false, errNoHost }
func logf(int32, string)            {}

func i2cTx(string, uint16, []byte, []byte) error { return errNoHost }
