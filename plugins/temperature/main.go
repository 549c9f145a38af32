// Command temperature is a job module that reports TMP102 temperature
// sensors on I2C: /temperatures/<name> in °C, to a sixteenth of a degree.
//
// Configuration:
//
//	config:
//	  sensors:
//	    attic: {bus: i2c1, address: 0x48}
package main

import (
	"fmt"
	"time"

	"github.com/tern-iot/tern/plugins/internal/tmp102"
	"github.com/tern-iot/tern/sdk"
)

func init() {
	sdk.Module("temperature", "0.1.0")
	sdk.Requests("i2c")
	sdk.Sensor("temperatures", "/temperatures", time.Second, sense)
}

func main() {}

type sensor struct {
	Bus     string `json:"bus"`
	Address uint16 `json:"address"`
}

type config struct {
	Sensors map[string]sensor `json:"sensors"`
}

func sense(c *sdk.Context) (any, error) {
	cfg, err := sdk.ConfigOf[config](c)
	if err != nil || len(cfg.Sensors) == 0 {
		return nil, fmt.Errorf("temperature: configure sensors: {name: {bus: i2c1, address: 0x48}} (%v)", err)
	}
	out := map[string]float64{}
	for name, s := range cfg.Sensors {
		t, err := tmp102.Read(s.Bus, s.Address)
		if err != nil {
			return nil, fmt.Errorf("temperature %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}
