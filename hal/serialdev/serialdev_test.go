package serialdev_test

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-iot/tern/hal/serial"
	"github.com/tern-iot/tern/hal/serial/serialtest"
	"github.com/tern-iot/tern/hal/serialdev"
	"github.com/tern-iot/tern/hal/sim"
)

// pty opens a pseudo-terminal served by dev. A machine without /dev/ptmx
// fails the test: the real backend must be exercised.
func pty(t *testing.T) *sim.PTY {
	t.Helper()
	p, err := sim.NewPTY()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestConformanceOverPTY(t *testing.T) {
	p := pty(t)
	p.Serve(func(b []byte) []byte { return append([]byte(nil), b...) })
	serialtest.Conformance(t, serialdev.Opener{Devices: map[string]string{"serial0": p.Path}}, "serial0")
}

func TestConformanceSim(t *testing.T) {
	s := sim.NewSerial()
	s.Connect("serial0", func(b []byte) []byte { return append([]byte(nil), b...) })
	serialtest.Conformance(t, s, "serial0")
}

// The real backend reads a simulated GPS's NMEA sentences off a pty.
func TestNMEAGPSOverPTY(t *testing.T) {
	p := pty(t)
	gps := &sim.NMEAGPS{Lat: 48.1173, Lon: 11.5167, Fix: true, Time: time.Date(1994, 3, 23, 12, 35, 19, 0, time.UTC)}
	p.Emit(20*time.Millisecond, gps.Sentences)
	port, err := serialdev.Opener{}.Open(p.Path, serial.Mode{Baud: 9600})
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	var text strings.Builder
	buf := make([]byte, 256)
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) && strings.Count(text.String(), "\n") < 4; {
		n, err := port.Read(buf, 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		text.Write(buf[:n])
	}
	sc := bufio.NewScanner(strings.NewReader(text.String()))
	seen := map[string]bool{}
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "$GPGGA,123519.00,4807.0380,N,01131.0020,E,1,") {
			seen["gga"] = true
		}
		if strings.HasPrefix(line, "$GPRMC,123519.00,A,4807.0380,N,01131.0020,E,") && strings.Contains(line, ",230394,") {
			seen["rmc"] = true
		}
	}
	if !seen["gga"] || !seen["rmc"] {
		t.Fatalf("sentences read:\n%s", text.String())
	}
}

// The real backend talks AT commands to a simulated modem over a pty.
func TestATModemOverPTY(t *testing.T) {
	p := pty(t)
	modem := &sim.ATModem{Signal: 18}
	p.Serve(modem.Respond)
	port, err := serialdev.Opener{}.Open(p.Path, serial.Mode{Baud: 115200})
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	for cmd, want := range map[string]string{"AT": "OK", "AT+CSQ": "+CSQ: 18,99", "ATX9": "ERROR"} {
		port.Write([]byte(cmd + "\r"))
		var got strings.Builder
		buf := make([]byte, 64)
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline) && !strings.Contains(got.String(), want); {
			n, _ := port.Read(buf, 100*time.Millisecond)
			got.Write(buf[:n])
		}
		if !strings.Contains(got.String(), want) {
			t.Errorf("%s: got %q, want %q", cmd, got.String(), want)
		}
	}
}

// BenchmarkEchoOverPTY: a write and its echo read back through the real
// backend and a pseudo-terminal.
func BenchmarkEchoOverPTY(b *testing.B) {
	p, err := sim.NewPTY()
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	p.Serve(func(in []byte) []byte { return append([]byte(nil), in...) })
	port, err := serialdev.Opener{}.Open(p.Path, serial.Mode{Baud: 115200})
	if err != nil {
		b.Fatal(err)
	}
	defer port.Close()
	msg, buf := []byte("AT\r"), make([]byte, 8)
	for b.Loop() {
		port.Write(msg)
		for got := 0; got < len(msg); {
			n, err := port.Read(buf, time.Second)
			if err != nil || n == 0 {
				b.Fatal("no echo", err)
			}
			got += n
		}
	}
}

// A device that talks while the port is closed (a GPS on a pty; a UART
// driver that keeps receiving) leaves its words in the kernel's buffer: a
// new Open must not hand them to the module, or a module that opens the
// port once a second reads ever older data.
func TestOpenDiscardsWhatArrivedWhileClosed(t *testing.T) {
	p := pty(t)
	var mu sync.Mutex
	n := 0
	p.Emit(10*time.Millisecond, func() []byte {
		mu.Lock()
		defer mu.Unlock()
		n++
		return fmt.Appendf(nil, "%08d\n", n)
	})
	o := serialdev.Opener{Devices: map[string]string{"serial0": p.Path}}
	port, err := o.Open("serial0", serial.Mode{Baud: 9600})
	if err != nil {
		t.Fatal(err)
	}
	port.Close()
	time.Sleep(300 * time.Millisecond) // about 30 lines while closed
	mu.Lock()
	before := n
	mu.Unlock()
	port, err = o.Open("serial0", serial.Mode{Baud: 9600})
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	var text []byte
	buf := make([]byte, 64)
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline) && bytes.Count(text, []byte("\n")) < 2; {
		k, err := port.Read(buf, 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		text = append(text, buf[:k]...)
	}
	// The first complete line after the reopen.
	lines := strings.Split(string(text), "\n")
	if len(lines) < 3 {
		t.Fatalf("read %q after reopening", text)
	}
	first := lines[0]
	if len(first) != 8 { // a partial line: the next is whole
		first = lines[1]
	}
	got, err := strconv.Atoi(first)
	if err != nil {
		t.Fatalf("line %q: %v", first, err)
	}
	if got < before {
		t.Errorf("after reopening, the first line is %d, written before the Open (the device was at %d when it happened): stale input was not discarded", got, before)
	}
}
