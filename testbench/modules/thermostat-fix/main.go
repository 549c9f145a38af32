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
//
// The code is the thermostat plugin's domain (plugins/thermostat/domain)
// with its recovery on: the operator's fix is the next version of the same
// source.
package main

import "github.com/tern-iot/tern/plugins/thermostat/domain"

func init() { domain.Register(domain.Options{Version: "0.2.0", Recovery: true}) }

func main() {}
