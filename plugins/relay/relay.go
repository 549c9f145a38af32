package main

import (
	"fmt"
	"sort"
	"time"

	"github.com/tern-iot/tern/sdk"
)

// config is the module's device configuration.
type config struct {
	// Lines maps relay names to GPIO line names.
	Lines map[string]string `json:"lines"`
	// ActiveLow inverts the lines: a relay board that switches on a low
	// input (most cheap opto-isolated boards do).
	ActiveLow bool `json:"active_low"`
}

func loadConfig(c *sdk.Context) (config, error) {
	cfg, err := sdk.ConfigOf[config](c)
	if err != nil {
		return config{}, fmt.Errorf("relay: no configuration: map relay names to GPIO lines under config.lines: %w", err)
	}
	return *cfg, nil
}

// configured is the condition of both jobs: the relay is known on this
// device and the target is a boolean.
func configured(c *sdk.Context) (bool, error) {
	cfg, err := loadConfig(c)
	if err != nil {
		return false, err
	}
	if _, ok := cfg.Lines[c.Param("name")]; !ok {
		return false, nil
	}
	var on bool
	return c.Target(&on) == nil, nil
}

func set(c *sdk.Context) error {
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	name := c.Param("name")
	line, ok := cfg.Lines[name]
	if !ok {
		return fmt.Errorf("relay %s is not configured on this device: add it to config.lines", name)
	}
	var on bool
	if err := c.Target(&on); err != nil {
		return fmt.Errorf("relay %s: target must be true or false: %w", name, err)
	}
	if err := sdk.GPIOWrite(line, on != cfg.ActiveLow); err != nil {
		return fmt.Errorf("relay %s: %w", name, err)
	}
	return nil
}

// sense reports every configured relay whose line can be read. A line that
// cannot be read (not granted, not on the board) is left out and logged: the
// relay is then absent from the state, and a target naming it fails in Run
// with the reason.
func sense(c *sdk.Context) (any, error) {
	cfg, err := loadConfig(c)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(cfg.Lines))
	for name := range cfg.Lines {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make(map[string]bool, len(names))
	for _, name := range names {
		high, err := sdk.GPIORead(cfg.Lines[name])
		if err != nil {
			sdk.Logf(sdk.LevelWarn, "relay %s: %v", name, err)
			continue
		}
		out[name] = high != cfg.ActiveLow
	}
	return out, nil
}

// pulseArgs are the arguments of the pulse command (a fleet job):
// {"relay": "door", "ms": 500}.
type pulseArgs struct {
	Relay string `json:"relay"`
	MS    int    `json:"ms"`
}

// pulse is a command: it switches a relay on for a while, then back to
// what it was (a door strike, a reset line), and returns what it did. It
// runs as a fleet job (tern job submit), never while a plan's tasks run.
func pulse(c *sdk.Context) (any, error) {
	cfg, err := loadConfig(c)
	if err != nil {
		return nil, err
	}
	var args pulseArgs
	if err := c.Target(&args); err != nil {
		return nil, fmt.Errorf("pulse: arguments {\"relay\": NAME, \"ms\": N}: %w", err)
	}
	line, ok := cfg.Lines[args.Relay]
	switch {
	case !ok:
		return nil, fmt.Errorf("pulse: relay %q is not configured on this device: add it to config.lines", args.Relay)
	case args.MS < 0 || args.MS > 5000:
		return nil, fmt.Errorf("pulse: ms %d: want 0 to 5000", args.MS)
	}
	was, err := sdk.GPIORead(line)
	if err != nil {
		return nil, fmt.Errorf("pulse: relay %s: %w", args.Relay, err)
	}
	if err := sdk.GPIOWrite(line, !cfg.ActiveLow); err != nil {
		return nil, fmt.Errorf("pulse: relay %s: %w", args.Relay, err)
	}
	time.Sleep(time.Duration(args.MS) * time.Millisecond)
	if err := sdk.GPIOWrite(line, was); err != nil {
		return nil, fmt.Errorf("pulse: relay %s: back to %v: %w", args.Relay, was, err)
	}
	return map[string]any{"relay": args.Relay, "line": line, "ms": args.MS}, nil
}
