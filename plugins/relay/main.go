// Command relay is a tern job module that switches relays wired to GPIO
// lines so that they match the target, e.g. {"relays": {"heater": true}}.
//
// Device configuration (ternd.yaml, under the module's config) maps relay
// names to the board's GPIO line names; the lines must also be granted:
//
//	config:
//	  lines: {heater: GPIO17, fan: GPIO27}
//	  active_low: false
//	grants:
//	  gpio: [GPIO17, GPIO27]
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o relay.wasm .
package main

import (
	"time"

	"github.com/tern-iot/tern/sdk"
)

func init() {
	sdk.Requests("gpio")
	sdk.Module("relay", "0.1.0")
	sdk.Job("set", "/relays/:name", sdk.Create, sdk.Action{Condition: configured, Run: set})
	sdk.Job("switch", "/relays/:name", sdk.Update, sdk.Action{Condition: configured, Run: set})
	sdk.Sensor("relays", "/relays", time.Second, sense)
	sdk.Command("pulse", pulse)
}

// main is never called: the module is a reactor.
func main() {}
