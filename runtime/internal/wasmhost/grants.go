package wasmhost

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/runtime/api"
)

// Grants are the resources a device gives a module (package api's type).
type Grants = api.Grants

// DefaultGPIORate is the write rate of a GPIO grant that names none:
// generous for a relay or a bit-banged signal, yet a bound.
const DefaultGPIORate = "200/s"

// writeRate is how often a module may write a line: bursts of n writes,
// refilled at n per per.
type writeRate struct {
	n   int
	per time.Duration
}

var defaultWriteRate = writeRate{n: 200, per: time.Second}

// maxWriteRate bounds n: more is no bound at all.
const maxWriteRate = 1_000_000

var rateUnits = map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}

func (r writeRate) String() string {
	unit := map[time.Duration]string{time.Second: "s", time.Minute: "m", time.Hour: "h"}[r.per]
	return strconv.Itoa(r.n) + "/" + unit
}

// words says r as a sentence would, "10 writes a second".
func (r writeRate) words() string {
	unit := map[time.Duration]string{time.Second: "a second", time.Minute: "a minute", time.Hour: "an hour"}[r.per]
	return strconv.Itoa(r.n) + " writes " + unit
}

// perSecond is the refill rate in writes a second.
func (r writeRate) perSecond() float64 { return float64(r.n) / r.per.Seconds() }

// parseGPIOGrant reads "line" or "line@n/unit".
func parseGPIOGrant(s string) (string, writeRate, error) {
	line, rate, hasRate := strings.Cut(s, "@")
	if !hasRate && line != "" {
		return line, defaultWriteRate, nil
	}
	count, unit, _ := strings.Cut(rate, "/")
	n, err := strconv.Atoi(count)
	per, ok := rateUnits[unit]
	if line == "" || err != nil || !ok || n < 1 || n > maxWriteRate {
		return "", writeRate{}, fmt.Errorf("wasmhost: GPIO grant %q: want a line name, or name@writes/unit with unit s, m or h and writes from 1 to %d, e.g. GPIO17@10/s (no rate: %s)", s, maxWriteRate, DefaultGPIORate)
	}
	return line, writeRate{n: n, per: per}, nil
}

// grantedLine is a GPIO line granted to a module, read from its grant
// once, at load.
type grantedLine struct {
	name      string
	rate      writeRate
	perSecond float64 // rate, in writes a second
	writes    bucket  // guarded by watch.mu
	// pin is the board's Pin for the line, once a lookup found it. Using
	// it again is as good as looking it up again (gpio.Pin: two Pins of a
	// line act on the same line; once the board is closed every Pin method
	// fails with ErrClosed, as gpiotest.Conformance checks), and the
	// lookup was a tenth of a gpio_write's time.
	pin atomic.Pointer[pinRef]
}

type pinRef struct{ gpio.Pin }

// grantedLines are the lines g grants, each with a full budget. g has
// passed check: every grant parses, and no line is granted twice.
func grantedLines(g Grants) []grantedLine {
	lines := make([]grantedLine, 0, len(g.GPIO))
	for _, s := range g.GPIO {
		if line, r, err := parseGPIOGrant(s); err == nil {
			lines = append(lines, grantedLine{name: line, rate: r, perSecond: r.perSecond()})
		}
	}
	return lines
}

// granted is the granted line named name, or nil. name is the module's
// bytes, compared in place: the line's name is the grant's string.
func (w *watch) granted(name []byte) *grantedLine {
	for i := range w.lines {
		if w.lines[i].name == string(name) {
			return &w.lines[i]
		}
	}
	return nil
}

// checkGrants refuses grants that cannot mean anything.
func checkGrants(g Grants) error {
	var lines []string
	for _, s := range g.GPIO {
		line, _, err := parseGPIOGrant(s)
		if err != nil {
			return err
		}
		if slices.Contains(lines, line) {
			return fmt.Errorf("wasmhost: GPIO grant %q: line %s is granted twice; keep one entry, with the rate it should have", s, line)
		}
		lines = append(lines, line)
	}
	for _, d := range g.I2C {
		if _, _, err := parseI2CGrant(d); err != nil {
			return err
		}
	}
	for _, p := range g.Serial {
		name, baud, hasBaud := strings.Cut(p, "@")
		if n, err := strconv.Atoi(baud); name == "" || hasBaud && (err != nil || n <= 0) {
			return fmt.Errorf("wasmhost: serial grant %q: want a port name, or name@baud, e.g. ttyS0@9600", p)
		}
	}
	return nil
}

func allowsSerial(g Grants, port string, baud int) bool {
	for _, p := range g.Serial {
		name, rate, hasBaud := strings.Cut(p, "@")
		if name == port && (!hasBaud || rate == strconv.Itoa(baud)) {
			return true
		}
	}
	return false
}

func allowsI2C(g Grants, bus string, addr uint16) bool {
	for _, d := range g.I2C {
		if b, a, err := parseI2CGrant(d); err == nil && b == bus && a == addr {
			return true
		}
	}
	return false
}

// parseI2CGrant reads "bus:address" (address in hex with 0x, or decimal).
func parseI2CGrant(s string) (string, uint16, error) {
	bus, addr, ok := strings.Cut(s, ":")
	n, err := strconv.ParseUint(addr, 0, 16)
	if !ok || bus == "" || err != nil || n > 0x3ff {
		return "", 0, fmt.Errorf("wasmhost: I2C grant %q: want bus:address, e.g. i2c1:0x48", s)
	}
	return bus, uint16(n), nil
}
