package domain

import (
	"fmt"
	"math"
	"time"

	"github.com/tern-iot/tern/plugins/internal/tmp102"
	"github.com/tern-iot/tern/sdk"
)

// SenseInterval is how often the room is read.
const SenseInterval = 200 * time.Millisecond

// Options say what a module's version of the domain has.
type Options struct {
	// Version is the module's version.
	Version string
	// Recovery adds the sensor check and the power-cycle recovery.
	Recovery bool
}

// recovery is Options.Recovery of the module this instance runs.
var recovery bool

// Register declares the module: its sensor, methods and jobs.
func Register(o Options) {
	recovery = o.Recovery
	sdk.Module("thermostat", o.Version)
	sdk.Requests("gpio", "i2c")
	sdk.Sensor("room", "/room", SenseInterval, senseRoom)
	if o.Recovery {
		sdk.Method("recover", "/room", sdk.Update, sdk.Expansion{Condition: stuck, Expand: recoverSensor})
	}
	sdk.Method("warm", "/room", sdk.Update, sdk.Expansion{Condition: colder, Expand: warm})
	sdk.Method("cool", "/room", sdk.Update, sdk.Expansion{Condition: warmer, Expand: cool})
	sdk.Job("heater", "/room/heater", sdk.Any, sdk.Action{Run: switchHeater})
	if o.Recovery {
		sdk.Job("power_cycle", "/room/sensor", sdk.Update, sdk.Action{Run: powerCycle})
	}
	sdk.Job("wait", "/room", sdk.Update, sdk.Action{Condition: heading, Effect: reached, Run: waitForTarget})
}

type config struct {
	Sensor struct {
		Bus     string `json:"bus"`
		Address uint16 `json:"address"`
	} `json:"sensor"`
	Heater string `json:"heater"`
	// SensorPower is the GPIO line that supplies the sensor (high: on).
	// Empty, or without Recovery: the sensor is not checked, and cannot
	// be recovered.
	SensorPower string `json:"sensor_power"`
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
	// Sensor is "ok", or "stuck" when the sensor failed its check (only
	// with Recovery and sensor_power).
	Sensor string `json:"sensor,omitempty"`
}

// checked reports whether the sensor is checked as it is read.
func (c *config) checked() bool { return recovery && c.SensorPower != "" }

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
	r := room{Temp: &whole, Heater: on}
	if cfg.checked() {
		r.Sensor = "ok"
		if ok, err := answers(cfg); err != nil {
			return nil, err
		} else if !ok {
			r.Sensor = "stuck"
		}
	}
	return r, nil
}

// answers checks that the sensor is alive: it flips a bit of T_LOW
// (register 2), reads it back and restores it. A latched chip drops the
// write.
func answers(cfg *config) (bool, error) {
	bus, addr := cfg.Sensor.Bus, cfg.Sensor.Address
	r := make([]byte, 2)
	if err := sdk.I2CTx(bus, addr, []byte{2}, r); err != nil {
		return false, err
	}
	probe := []byte{2, r[0] ^ 0x01, r[1]}
	if err := sdk.I2CTx(bus, addr, probe, nil); err != nil {
		return false, err
	}
	back := make([]byte, 2)
	if err := sdk.I2CTx(bus, addr, []byte{2}, back); err != nil {
		return false, err
	}
	if err := sdk.I2CTx(bus, addr, []byte{2, r[0], r[1]}, nil); err != nil {
		return false, err
	}
	return back[0] == probe[1] && back[1] == probe[2], nil
}

// stuck: the sensor failed its check; nothing it reads can be trusted.
func stuck(c *sdk.Context) (bool, error) {
	var cur room
	return c.Current(&cur) == nil && cur.Sensor == "stuck", nil
}

// recoverSensor power-cycles the sensor; the planner then goes on from a
// working sensor.
func recoverSensor(*sdk.Context) ([]sdk.TaskRef, error) {
	return []sdk.TaskRef{sdk.Do("power_cycle", "/room/sensor").WithTarget("ok")}, nil
}

// powerCycle cuts the sensor's supply for 200 ms and restores it.
func powerCycle(c *sdk.Context) error {
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	if cfg.SensorPower == "" {
		return fmt.Errorf("thermostat: the sensor is stuck and cannot be power-cycled: configure sensor_power (the GPIO line that supplies it) and grant it")
	}
	sdk.Logf(sdk.LevelWarn, "thermostat: sensor stuck; power-cycling it through %s", cfg.SensorPower)
	if err := sdk.GPIOWrite(cfg.SensorPower, false); err != nil {
		return err
	}
	time.Sleep(200 * time.Millisecond)
	if err := sdk.GPIOWrite(cfg.SensorPower, true); err != nil {
		return err
	}
	time.Sleep(50 * time.Millisecond) // the TMP102's first conversion takes 26 ms
	if ok, err := answers(cfg); err != nil || !ok {
		return fmt.Errorf("thermostat: the sensor is still stuck after a power cycle (%v): replace it", err)
	}
	return nil
}

func rooms(c *sdk.Context) (cur, tgt room, err error) {
	if err = c.Current(&cur); err == nil {
		err = c.Target(&tgt)
	}
	return cur, tgt, err
}

func colder(c *sdk.Context) (bool, error) {
	cur, tgt, err := rooms(c)
	return err == nil && cur.Sensor != "stuck" && cur.Temp != nil && tgt.Temp != nil && *cur.Temp < *tgt.Temp, nil
}

func warmer(c *sdk.Context) (bool, error) {
	cur, tgt, err := rooms(c)
	return err == nil && cur.Sensor != "stuck" && cur.Temp != nil && tgt.Temp != nil && *cur.Temp > *tgt.Temp, nil
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

// Overshoot is how far past the target a heating room is taken before the
// heater goes off. Stopping at the rounding boundary (target − 0.5) would
// leave the room to drift below it again at once, and a noisy sensor there
// would flip between two readings: the agent would plan, switch and report
// several times a second. With the overshoot the room coasts about
// 0.7 °C before it needs heat again. It is small enough that the sensor,
// polled every 50 ms while heating, still reads the target.
const Overshoot = 0.2

// waitForTarget polls the sensor until the room is at the target (a
// heating room: Overshoot past it; a cooling one: within half a degree),
// or gives up (the agent plans again).
func waitForTarget(c *sdk.Context) error {
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	_, tgt, err := rooms(c)
	if err != nil || tgt.Temp == nil {
		return fmt.Errorf("thermostat: no target temperature: %v", err)
	}
	heating := false
	for i := range 100 {
		t, err := readTemp(cfg)
		if err != nil {
			return err
		}
		if i == 0 {
			heating = t < *tgt.Temp
		}
		if heating && t >= *tgt.Temp+Overshoot || !heating && math.Round(t) == *tgt.Temp {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("thermostat: the room is not at %v °C yet", *tgt.Temp)
}
