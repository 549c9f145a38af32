// Command thermostat is a job module that holds a room at a target
// temperature: a TMP102 sensor on I2C reports the room, a relay on a GPIO
// line switches its heater. Target: {"room": {"temp": 21}}.
//
// It is an HTN domain: "warm" expands into switching the heater on, waiting
// until the room is warm, and switching it off again; "cool" waits with the
// heater off. The sensor reports whole degrees, so a target is met within
// half a degree.
//
// Configuration:
//
//	config:
//	  sensor: {bus: i2c1, address: 0x48}
//	  heater: GPIO17
package main

import "github.com/tern-iot/tern/sdk"

func init() {
	sdk.Module("thermostat", "0.1.0")
	sdk.Requests("gpio", "i2c")
	sdk.Sensor("room", "/room", roomInterval, senseRoom)
	sdk.Method("warm", "/room", sdk.Update, sdk.Expansion{Condition: colder, Expand: warm})
	sdk.Method("cool", "/room", sdk.Update, sdk.Expansion{Condition: warmer, Expand: cool})
	sdk.Job("heater", "/room/heater", sdk.Any, sdk.Action{Run: switchHeater})
	sdk.Job("wait", "/room", sdk.Update, sdk.Action{Condition: heading, Effect: reached, Run: waitForTarget})
}

func main() {}
