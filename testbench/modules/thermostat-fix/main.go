// Command thermostat-fix is thermostat 0.2.0, the fix an operator ships
// when sensors get stuck in the field: a TMP102 whose state machine has
// latched keeps answering with one temperature, so version 0.1.0 heats
// forever and never reaches its target.
//
// This version checks the sensor as it reads it (a register written and
// read back: a latched chip drops the write), reports /room/sensor as "ok"
// or "stuck", and has a recovery method: when the sensor is stuck, cut its
// supply through a GPIO line and restore it, then go on as before.
//
// Configuration: thermostat's, plus the sensor's power line, which the
// device must grant:
//
//	config:
//	  sensor: {bus: i2c1, address: 0x48}
//	  heater: GPIO17
//	  sensor_power: GPIO22
package main

import "github.com/tern-iot/tern/sdk"

func init() {
	sdk.Module("thermostat", "0.2.0")
	sdk.Requests("gpio", "i2c")
	sdk.Sensor("room", "/room", roomInterval, senseRoom)
	sdk.Method("recover", "/room", sdk.Update, sdk.Expansion{Condition: stuck, Expand: recoverSensor})
	sdk.Method("warm", "/room", sdk.Update, sdk.Expansion{Condition: colder, Expand: warm})
	sdk.Method("cool", "/room", sdk.Update, sdk.Expansion{Condition: warmer, Expand: cool})
	sdk.Job("heater", "/room/heater", sdk.Any, sdk.Action{Run: switchHeater})
	sdk.Job("power_cycle", "/room/sensor", sdk.Update, sdk.Action{Run: powerCycle})
	sdk.Job("wait", "/room", sdk.Update, sdk.Action{Condition: heading, Effect: reached, Run: waitForTarget})
}

func main() {}
