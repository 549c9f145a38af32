package sim_test

import (
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/tern-iot/tern/boards"
	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/hal/gpio/gpiotest"
	"github.com/tern-iot/tern/hal/sim"
)

var (
	_ io.Closer              = (*sim.GPIO)(nil)
	_ gpiotest.PullSimulator = (*sim.GPIO)(nil)
)

func TestConformance(t *testing.T) {
	lines := []string{"GPIO2", "GPIO3", "GPIO17", "GPIO27"}
	gpiotest.Conformance(t, sim.NewGPIO(lines...), lines)
}

// TestConformanceBoard runs the suite the way the agent builds a simulated
// board: from a board's lines.
func TestConformanceBoard(t *testing.T) {
	b, err := boards.Lookup("sim")
	if err != nil {
		t.Fatal(err)
	}
	gpiotest.Conformance(t, sim.NewGPIO(b.Lines()...), b.Lines())
}

func TestConformanceOneLine(t *testing.T) {
	gpiotest.Conformance(t, sim.NewGPIO("GPIO17", "GPIO17"), []string{"GPIO17"})
}

// TestWorld checks what the outside world (Drive, Release, Level, Writes)
// sees and does, line by line, against what the agent does.
func TestWorld(t *testing.T) {
	g := sim.NewGPIO("GPIO17", "GPIO27")
	p, err := g.Pin("GPIO17")
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		do   func() error
		want gpio.Level // what both Read and Level must see after do
	}{
		{func() error { return nil }, gpio.Low},                         // new: floating input
		{func() error { return p.In(gpio.PullUp) }, gpio.High},          // pulled up
		{func() error { return g.Drive("GPIO17", gpio.Low) }, gpio.Low}, // a button pulls it to ground
		{func() error { return p.In(gpio.PullDown) }, gpio.Low},         // still driven
		{func() error { return g.Drive("GPIO17", gpio.High) }, gpio.High},
		{func() error { return g.Release("GPIO17") }, gpio.Low}, // back to its pull
		{func() error { return p.Out(gpio.High) }, gpio.High},
		{func() error { return g.Drive("GPIO17", gpio.Low) }, gpio.High}, // an output reads what it drives
		{func() error { return p.In(gpio.PullUp) }, gpio.Low},            // the external signal wins over the pull
		{func() error { return g.Release("GPIO17") }, gpio.High},
		{func() error { return p.In(gpio.PullNone) }, gpio.Low},
	}
	for i, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got, err := p.Read(); err != nil || got != s.want {
			t.Errorf("step %d: Read = %v, %v; want %v", i, got, err, s.want)
		}
		if got, err := g.Level("GPIO17"); err != nil || got != s.want {
			t.Errorf("step %d: Level = %v, %v; want %v", i, got, err, s.want)
		}
	}
	if n := g.Writes("GPIO17"); n != 1 {
		t.Errorf("Writes(GPIO17) = %d, want 1", n)
	}
	if n := g.Writes("GPIO27"); n != 0 {
		t.Errorf("Writes(GPIO27) = %d, want 0 (untouched)", n)
	}
	if n := g.Writes("GPIO71"); n != -1 {
		t.Errorf("Writes(GPIO71) = %d, want -1 (no such line)", n)
	}
}

func TestWorldUnknownLine(t *testing.T) {
	g := sim.NewGPIO("GPIO17")
	for name, err := range map[string]error{
		"Drive":   g.Drive("GPIO71", gpio.High),
		"Release": g.Release("GPIO71"),
		"Level":   func() error { _, err := g.Level("GPIO71"); return err }(),
		"Pin":     func() error { _, err := g.Pin("GPIO71"); return err }(),
	} {
		if !errors.Is(err, gpio.ErrUnknownLine) {
			t.Errorf("%s(GPIO71) = %v; want gpio.ErrUnknownLine", name, err)
		}
	}
}

// TestWorldAfterClose checks that closing the agent's side leaves the
// outside world working, so a testbench can probe a board whose agent quit.
func TestWorldAfterClose(t *testing.T) {
	g := sim.NewGPIO("GPIO17")
	p, _ := g.Pin("GPIO17")
	if err := p.Out(gpio.High); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := p.Out(gpio.Low); !errors.Is(err, gpio.ErrClosed) {
		t.Errorf("Out after Close = %v, want gpio.ErrClosed", err)
	}
	if lv, err := g.Level("GPIO17"); err != nil || lv != gpio.High {
		t.Errorf("Level after Close = %v, %v; want High", lv, err)
	}
	if n := g.Writes("GPIO17"); n != 1 {
		t.Errorf("Writes after a refused Out = %d, want 1", n)
	}
	if err := g.Drive("GPIO17", gpio.Low); err != nil {
		t.Errorf("Drive after Close: %v", err)
	}
}

func TestErrorText(t *testing.T) {
	g := sim.NewGPIO("GPIO17")
	_, err := g.Pin("GPIO71")
	if got, want := fmt.Sprint(err), `sim: line "GPIO71": gpio: no such line`; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
	p, _ := g.Pin("GPIO17")
	if got, want := fmt.Sprint(p.In(gpio.Pull(9))), `sim: line "GPIO17": invalid pull Pull(9)`; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
}

func ExampleGPIO() {
	g := sim.NewGPIO("GPIO17", "GPIO27")

	// The agent's side: a relay on GPIO17, a button on GPIO27.
	relay, _ := g.Pin("GPIO17")
	button, _ := g.Pin("GPIO27")
	_ = relay.Out(gpio.High)
	_ = button.In(gpio.PullUp)

	// The outside world: press the button, probe the relay.
	_ = g.Drive("GPIO27", gpio.Low)
	pressed, _ := button.Read()
	relayAt, _ := g.Level("GPIO17")
	fmt.Println("button:", pressed, "relay:", relayAt, "relay writes:", g.Writes("GPIO17"))
	// Output: button: Low relay: High relay writes: 1
}

// A wire carries one line's level to another, and its changes as edges.
func TestWire(t *testing.T) {
	g := sim.NewGPIO("GPIO5", "GPIO6")
	if err := g.Wire("GPIO5", "GPIO6"); err != nil {
		t.Fatal(err)
	}
	out, _ := g.Pin("GPIO5")
	in, _ := g.Pin("GPIO6")
	in.In(gpio.PullNone)
	out.Out(gpio.High)
	if l, _ := in.Read(); l != gpio.High {
		t.Fatal("GPIO6 does not follow GPIO5 high")
	}
	edge := make(chan bool)
	go func() { got, _ := in.WaitForEdge(5 * time.Second); edge <- got }()
	time.Sleep(10 * time.Millisecond)
	out.Out(gpio.Low)
	if !<-edge {
		t.Fatal("GPIO6 saw no edge when GPIO5 fell")
	}
	if l, _ := in.Read(); l != gpio.Low {
		t.Fatal("GPIO6 does not follow GPIO5 low")
	}
	if err := g.Wire("GPIO5", "GPIO99"); err == nil {
		t.Fatal("a wire to no line was accepted")
	}
}
