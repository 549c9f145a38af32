// Package revrelay is the relay module of the rollout scenarios' releases
// (relay-revb and relay-fixed): it switches relays on GPIO lines and reads
// the board's HAT EEPROM (a 24c02 at i2c1:0x50); a board without one is
// revision A, one that says "rev-b" at address 0 is revision B.
package revrelay

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/tern-iot/tern/sdk"
)

type config struct {
	Lines map[string]string `json:"lines"`
}

// failRevB makes the sensor and jobs fail on revision B boards.
var failRevB bool

// Register registers relay version; with failOnRevB its sensor and jobs
// fail on revision B boards, as a release built for the common board
// fails on a variant nobody tested it on.
func Register(version string, failOnRevB bool) {
	failRevB = failOnRevB
	sdk.Requests("gpio", "i2c")
	sdk.Module("relay", version)
	sdk.Job("set", "/relays/:name", sdk.Create, sdk.Action{Condition: configured, Run: set})
	sdk.Job("switch", "/relays/:name", sdk.Update, sdk.Action{Condition: configured, Run: set})
	sdk.Sensor("relays", "/relays", 200*time.Millisecond, sense)
}

var errRevB = errors.New("relay: revision B board (HAT EEPROM says rev-b): its relays are on other lines; this release does not support it")

// revB reads the HAT EEPROM, when the release fails on revision B; no
// EEPROM (no acknowledgement) is revision A.
func revB() bool {
	if !failRevB {
		return false
	}
	buf := make([]byte, 5)
	if err := sdk.I2CTx("i2c1", 0x50, []byte{0}, buf); err != nil {
		return false
	}
	return string(buf) == "rev-b"
}

func load(c *sdk.Context) (config, error) {
	cfg, err := sdk.ConfigOf[config](c)
	if err != nil {
		return config{}, fmt.Errorf("relay: configure lines: %w", err)
	}
	return *cfg, nil
}

func configured(c *sdk.Context) (bool, error) {
	cfg, err := load(c)
	if err != nil {
		return false, err
	}
	_, ok := cfg.Lines[c.Param("name")]
	var on bool
	return ok && c.Target(&on) == nil, nil
}

func set(c *sdk.Context) error {
	if revB() {
		return errRevB
	}
	cfg, err := load(c)
	if err != nil {
		return err
	}
	var on bool
	if err := c.Target(&on); err != nil {
		return err
	}
	return sdk.GPIOWrite(cfg.Lines[c.Param("name")], on)
}

func sense(c *sdk.Context) (any, error) {
	if revB() {
		return nil, errRevB
	}
	cfg, err := load(c)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(cfg.Lines))
	for n := range cfg.Lines {
		names = append(names, n)
	}
	sort.Strings(names)
	out := map[string]bool{}
	for _, n := range names {
		high, err := sdk.GPIORead(cfg.Lines[n])
		if err != nil {
			continue
		}
		out[n] = high
	}
	return out, nil
}
