package main

import (
	"fmt"
	"math"
	"time"

	"github.com/tern-iot/tern/plugins/internal/tmp102"
	"github.com/tern-iot/tern/sdk"
)

const roomInterval = 200 * time.Millisecond

type config struct {
	Sensor struct {
		Bus     string `json:"bus"`
		Address uint16 `json:"address"`
	} `json:"sensor"`
	Heater string `json:"heater"`
}

func loadConfig(c *sdk.Context) (*config, error) {
	cfg, err := sdk.ConfigOf[config](c)
	if err != nil || cfg.Sensor.Bus == "" || cfg.Heater == "" {
		return nil, fmt.Errorf("thermostat: configure sensor.bus, sensor.address and heater (%v)", err)
	}
	return cfg, nil
}

// room is /room as the sensor reports it and the planner reasons about it.
type room struct {
	Temp   *float64 `json:"temp,omitempty"`
	Heater bool     `json:"heater"`
}

// readTemp reads the room's TMP102.
func readTemp(cfg *config) (float64, error) { return tmp102.Read(cfg.Sensor.Bus, cfg.Sensor.Address) }

func senseRoom(c *sdk.Context) (any, error) {
	cfg, err := loadConfig(c)
	if err != nil {
		return nil, err
	}
	t, err := readTemp(cfg)
	if err != nil {
		return nil, err
	}
	on, err := sdk.GPIORead(cfg.Heater)
	if err != nil {
		return nil, err
	}
	whole := math.Round(t)
	return room{Temp: &whole, Heater: on}, nil
}

func rooms(c *sdk.Context) (cur, tgt room, err error) {
	if err = c.Current(&cur); err == nil {
		err = c.Target(&tgt)
	}
	return cur, tgt, err
}

func colder(c *sdk.Context) (bool, error) {
	cur, tgt, err := rooms(c)
	return err == nil && cur.Temp != nil && tgt.Temp != nil && *cur.Temp < *tgt.Temp, nil
}

func warmer(c *sdk.Context) (bool, error) {
	cur, tgt, err := rooms(c)
	return err == nil && cur.Temp != nil && tgt.Temp != nil && *cur.Temp > *tgt.Temp, nil
}

func warm(*sdk.Context) ([]sdk.TaskRef, error) {
	return []sdk.TaskRef{
		sdk.Do("heater", "/room/heater").WithTarget(true),
		sdk.Again("wait"),
		sdk.Do("heater", "/room/heater").WithTarget(false),
	}, nil
}

func cool(*sdk.Context) ([]sdk.TaskRef, error) {
	return []sdk.TaskRef{sdk.Do("heater", "/room/heater").WithTarget(false), sdk.Again("wait")}, nil
}

// heading: the heater pushes the room toward the target.
func heading(c *sdk.Context) (bool, error) {
	cur, tgt, err := rooms(c)
	if err != nil || cur.Temp == nil || tgt.Temp == nil {
		return false, nil
	}
	return cur.Heater == (*cur.Temp < *tgt.Temp) && *cur.Temp != *tgt.Temp, nil
}

func reached(c *sdk.Context) (any, error) {
	cur, tgt, err := rooms(c)
	if err != nil {
		return nil, err
	}
	cur.Temp = tgt.Temp
	return cur, nil
}

func switchHeater(c *sdk.Context) error {
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	on, err := c.TargetBool()
	if err != nil {
		return err
	}
	return sdk.GPIOWrite(cfg.Heater, on)
}

// waitForTarget polls the sensor until the room is at the target, within
// half a degree, or gives up (the agent plans again).
func waitForTarget(c *sdk.Context) error {
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	_, tgt, err := rooms(c)
	if err != nil || tgt.Temp == nil {
		return fmt.Errorf("thermostat: no target temperature: %v", err)
	}
	for range 100 {
		t, err := readTemp(cfg)
		if err != nil {
			return err
		}
		if math.Round(t) == *tgt.Temp {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("thermostat: the room is not at %v °C yet", *tgt.Temp)
}
