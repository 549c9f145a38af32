//go:build !wasip1

package main

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/hal/serialdev"
	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/sdk/sdktest"
)

// A receiver that talks NMEA on a real pseudo-terminal, opened through the
// board's real serial backend: the module reports its fix, and says so
// when the port stays silent.
func TestGPSOverAPseudoTerminal(t *testing.T) {
	pty := newPTY(t)
	gps := &sim.NMEAGPS{Fix: true, Time: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
	gps.Move(52.52, 13.405)
	pty.Emit(50*time.Millisecond, gps.Sentences)
	board := sdktest.Board{Serial: serialdev.Opener{Devices: map[string]string{"serial0": pty.Path, "serial1": newPTY(t).Path}}}
	m, err := sdktest.New(board, map[string]any{"port": "serial0", "baud": 9600})
	if err != nil {
		t.Fatal(err)
	}
	v, err := m.Sense("position")
	m.Close()
	if err != nil {
		t.Fatal(err)
	}
	var got Fix
	if err := json.Unmarshal(v, &got); err != nil || !got.Fix || math.Abs(got.Lat-52.52) > 1e-4 || math.Abs(got.Lon-13.405) > 1e-4 {
		t.Fatalf("position %s (%v), want a fix at 52.52, 13.405", v, err)
	}

	m, err = sdktest.New(board, map[string]any{"port": "serial1"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Sense("position"); err == nil || !strings.Contains(err.Error(), "no RMC sentence on serial1") {
		t.Errorf("a silent port: %v, want the module to say it heard no RMC sentence", err)
	}
}

// newPTY opens a pseudo-terminal, closed when the test ends; a machine
// without /dev/ptmx fails the test.
func newPTY(t *testing.T) *sim.PTY {
	t.Helper()
	p, err := sim.NewPTY()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}
