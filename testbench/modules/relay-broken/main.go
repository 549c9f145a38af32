// Command relay-broken is relay 0.1.1, a bad release: its sensor and jobs
// fail on every call, as a module built against the wrong board would. A
// device that installs it rolls it back to the relay it replaced after
// three failed calls in a row (module.rolled_back).
package main

import (
	"errors"
	"time"

	"github.com/tern-iot/tern/sdk"
)

var errBroken = errors.New("relay 0.1.1: line map missing (this release is broken on purpose)")

func init() {
	sdk.Requests("gpio")
	sdk.Module("relay", "0.1.1")
	sdk.Job("set", "/relays/:name", sdk.Create, sdk.Action{Run: fail})
	sdk.Job("switch", "/relays/:name", sdk.Update, sdk.Action{Run: fail})
	sdk.Sensor("relays", "/relays", 200*time.Millisecond, func(*sdk.Context) (any, error) { return nil, errBroken })
}

func fail(*sdk.Context) error { return errBroken }

func main() {}
