// Command thermostat is a job module that holds a room at a target
// temperature: a TMP102 sensor on I2C reports the room, a relay on a GPIO
// line switches its heater. Target: {"room": {"temp": 21}}.
//
// It is an HTN domain: "warm" expands into switching the heater on, waiting
// until the room is warm, and switching it off again; "cool" waits with the
// heater off. The sensor reports whole degrees, so a target is met within
// half a degree; heating stops 0.2 °C past the target, so the room coasts
// a while before it needs heat again. The domain lives in package domain,
// which the testbench's thermostat fix (0.2.0) shares.
//
// Configuration:
//
//	config:
//	  sensor: {bus: i2c1, address: 0x48}
//	  heater: GPIO17
package main

import "github.com/tern-iot/tern/plugins/thermostat/domain"

func init() { domain.Register(domain.Options{Version: "0.1.0"}) }

func main() {}
