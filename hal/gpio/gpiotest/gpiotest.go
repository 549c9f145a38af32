package gpiotest

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/tern-iot/tern/hal/gpio"
)

// PullSimulator is an optional ability of a Lookup under test: SimulatesPulls
// reports whether an input that nothing outside drives reads the level of its
// pull. hal/sim says true. A real backend on a rig whose lines are left
// unconnected can be wrapped to say true; Conformance checks pulls only then.
type PullSimulator interface {
	SimulatesPulls() bool
}

// hammerRounds is how many Out/Read rounds each goroutine of the concurrency
// check does per line.
const hammerRounds = 200

// Conformance checks that l keeps the gpio contract on the named lines:
//
//   - Pin returns a Pin for each line, whose Name is the line's name;
//   - an unknown name is an error wrapping gpio.ErrUnknownLine;
//   - Out then Read reads back both levels, and two Pins for the same line
//     see the same line;
//   - In accepts every Pull and refuses an unknown one;
//   - an input reads its pull level, if l is a PullSimulator that says so;
//   - Lookup and Pins are safe for concurrent use (run with -race);
//   - if l is an io.Closer, Conformance closes it last and checks that Pin
//     and every Pin method then fail with gpio.ErrClosed.
//
// The lines must be free: nothing outside may drive them, and driving them
// must harm nothing. Conformance leaves them as inputs with gpio.PullNone.
func Conformance(t *testing.T, l gpio.Lookup, lines []string) {
	t.Helper()
	if len(lines) == 0 {
		t.Fatal("gpiotest: Conformance needs at least one line")
	}
	pins := func(t *testing.T) []gpio.Pin {
		t.Helper()
		ps := make([]gpio.Pin, len(lines))
		for i, name := range lines {
			p, err := l.Pin(name)
			if err != nil {
				t.Fatalf("Pin(%q): %v", name, err)
			}
			ps[i] = p
		}
		t.Cleanup(func() {
			for _, p := range ps {
				_ = p.In(gpio.PullNone) // leave the lines safe; fails only if closed
			}
		})
		return ps
	}

	t.Run("Names", func(t *testing.T) {
		for i, p := range pins(t) {
			if got := p.Name(); got != lines[i] {
				t.Errorf("Pin(%q).Name() = %q", lines[i], got)
			}
		}
	})

	t.Run("UnknownLine", func(t *testing.T) {
		for _, name := range []string{"gpiotest: no such line", ""} {
			p, err := l.Pin(name)
			if !errors.Is(err, gpio.ErrUnknownLine) {
				t.Errorf("Pin(%q) = %v, %v; want an error wrapping gpio.ErrUnknownLine", name, p, err)
			}
		}
	})

	t.Run("OutRead", func(t *testing.T) {
		for _, p := range pins(t) {
			for _, lv := range []gpio.Level{gpio.High, gpio.Low, gpio.High, gpio.Low} {
				if err := p.Out(lv); err != nil {
					t.Fatalf("%s: Out(%v): %v", p.Name(), lv, err)
				}
				checkRead(t, p, lv, fmt.Sprintf("after Out(%v)", lv))
			}
		}
	})

	t.Run("SameLine", func(t *testing.T) {
		for _, p := range pins(t) {
			q, err := l.Pin(p.Name())
			if err != nil {
				t.Fatalf("second Pin(%q): %v", p.Name(), err)
			}
			for _, lv := range []gpio.Level{gpio.High, gpio.Low} {
				if err := p.Out(lv); err != nil {
					t.Fatalf("%s: Out(%v): %v", p.Name(), lv, err)
				}
				checkRead(t, q, lv, fmt.Sprintf("through a second Pin after Out(%v) on the first", lv))
			}
		}
	})

	t.Run("In", func(t *testing.T) {
		for _, p := range pins(t) {
			for _, pull := range []gpio.Pull{gpio.PullNone, gpio.PullDown, gpio.PullUp} {
				if err := p.In(pull); err != nil {
					t.Errorf("%s: In(%v): %v", p.Name(), pull, err)
				}
				if _, err := p.Read(); err != nil {
					t.Errorf("%s: Read after In(%v): %v", p.Name(), pull, err)
				}
			}
			for _, pull := range []gpio.Pull{gpio.Pull(-1), gpio.PullUp + 1} {
				if err := p.In(pull); err == nil {
					t.Errorf("%s: In(%v) succeeded; want an error", p.Name(), pull)
				}
			}
		}
	})

	t.Run("Pulls", func(t *testing.T) {
		if ps, ok := l.(PullSimulator); !ok || !ps.SimulatesPulls() {
			t.Skip("the Lookup does not simulate pulls (see PullSimulator)")
		}
		for _, p := range pins(t) {
			// Start from the opposite level each time, so a backend that
			// ignores In and keeps the output level fails.
			for _, c := range []struct {
				from gpio.Level
				pull gpio.Pull
				want gpio.Level
			}{
				{gpio.Low, gpio.PullUp, gpio.High},
				{gpio.High, gpio.PullDown, gpio.Low},
				{gpio.Low, gpio.PullUp, gpio.High},
			} {
				if err := p.Out(c.from); err != nil {
					t.Fatalf("%s: Out(%v): %v", p.Name(), c.from, err)
				}
				if err := p.In(c.pull); err != nil {
					t.Fatalf("%s: In(%v): %v", p.Name(), c.pull, err)
				}
				checkRead(t, p, c.want, fmt.Sprintf("after In(%v)", c.pull))
			}
		}
	})

	t.Run("Edges", func(t *testing.T) {
		ps, ok := l.(PullSimulator)
		if !ok || !ps.SimulatesPulls() {
			t.Skip("the Lookup does not simulate pulls (see PullSimulator): an edge needs a line nothing else drives")
		}
		p := pins(t)[0]
		if err := p.In(gpio.PullDown); err != nil {
			t.Fatal(err)
		}
		if got, err := p.WaitForEdge(30 * time.Millisecond); got || err != nil {
			t.Fatalf("%s: WaitForEdge with nothing happening: %v, %v", p.Name(), got, err)
		}
		go func() {
			time.Sleep(20 * time.Millisecond)
			p.In(gpio.PullUp) // the level rises: an edge
		}()
		if got, err := p.WaitForEdge(5 * time.Second); !got || err != nil {
			t.Fatalf("%s: WaitForEdge missed the rising level: %v, %v", p.Name(), got, err)
		}
		checkRead(t, p, gpio.High, "after the edge")
	})

	t.Run("Concurrent", func(t *testing.T) {
		ps := pins(t)
		var wg sync.WaitGroup
		errs := make(chan error, 4*len(ps))
		for _, p := range ps {
			// One writer per line: what it reads back must be what it wrote.
			wg.Go(func() {
				for i := range hammerRounds {
					lv := gpio.Level(i%2 == 0)
					if err := p.Out(lv); err != nil {
						errs <- fmt.Errorf("%s: Out(%v): %w", p.Name(), lv, err)
						return
					}
					got, err := p.Read()
					if err != nil || got != lv {
						errs <- fmt.Errorf("%s: Read after Out(%v) = %v, %v", p.Name(), lv, got, err)
						return
					}
				}
			})
			// Readers and lookups beside it: no race, no error.
			wg.Go(func() {
				for range hammerRounds {
					q, err := l.Pin(p.Name())
					if err != nil {
						errs <- fmt.Errorf("Pin(%q) while in use: %w", p.Name(), err)
						return
					}
					if q.Name() != p.Name() {
						errs <- fmt.Errorf("Pin(%q).Name() = %q while in use", p.Name(), q.Name())
						return
					}
					if _, err := q.Read(); err != nil {
						errs <- fmt.Errorf("%s: Read while in use: %w", p.Name(), err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("Closed", func(t *testing.T) {
		c, ok := l.(io.Closer)
		if !ok {
			t.Skip("the Lookup is not an io.Closer")
		}
		p, err := l.Pin(lines[0])
		if err != nil {
			t.Fatalf("Pin(%q): %v", lines[0], err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if _, err := l.Pin(lines[0]); !errors.Is(err, gpio.ErrClosed) {
			t.Errorf("Pin(%q) after Close: %v; want an error wrapping gpio.ErrClosed", lines[0], err)
		}
		if _, err := p.Read(); !errors.Is(err, gpio.ErrClosed) {
			t.Errorf("%s: Read after Close: %v; want gpio.ErrClosed", lines[0], err)
		}
		if err := p.Out(gpio.High); !errors.Is(err, gpio.ErrClosed) {
			t.Errorf("%s: Out after Close: %v; want gpio.ErrClosed", lines[0], err)
		}
		if err := p.In(gpio.PullNone); !errors.Is(err, gpio.ErrClosed) {
			t.Errorf("%s: In after Close: %v; want gpio.ErrClosed", lines[0], err)
		}
		if got := p.Name(); got != lines[0] {
			t.Errorf("Name after Close = %q, want %q", got, lines[0])
		}
	})
}

func checkRead(t *testing.T, p gpio.Pin, want gpio.Level, when string) {
	t.Helper()
	got, err := p.Read()
	if err != nil {
		t.Fatalf("%s: Read %s: %v", p.Name(), when, err)
	}
	if got != want {
		t.Errorf("%s: Read %s = %v, want %v", p.Name(), when, got, want)
	}
}
