package serialtest

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/tern-iot/tern/hal/serial"
)

// Conformance checks o's port name, whose far end echoes.
func Conformance(t *testing.T, o serial.Opener, name string) {
	t.Helper()
	t.Run("unknown port", func(t *testing.T) {
		if _, err := o.Open(name+"-no-such", serial.Mode{Baud: 9600}); !errors.Is(err, serial.ErrUnknownPort) {
			t.Fatalf("Open of an unknown port: %v, want ErrUnknownPort", err)
		}
	})
	t.Run("echo", func(t *testing.T) {
		p, err := o.Open(name, serial.Mode{Baud: 9600})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		msg := []byte("$PTERN,hello*00\r\n")
		if n, err := p.Write(msg); err != nil || n != len(msg) {
			t.Fatalf("Write: %d, %v", n, err)
		}
		got := readFor(t, p, len(msg), 2*time.Second)
		if !bytes.Equal(got, msg) {
			t.Fatalf("read back %q, want %q", got, msg)
		}
	})
	t.Run("read times out empty", func(t *testing.T) {
		p, err := o.Open(name, serial.Mode{Baud: 115200})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		start := time.Now()
		n, err := p.Read(make([]byte, 16), 50*time.Millisecond)
		if n != 0 || err != nil {
			t.Fatalf("Read with nothing sent: %d, %v; want 0, nil", n, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("Read waited %v for a 50ms timeout", d)
		}
	})
	t.Run("one user at a time", func(t *testing.T) {
		p, err := o.Open(name, serial.Mode{Baud: 9600})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := o.Open(name, serial.Mode{Baud: 9600}); !errors.Is(err, serial.ErrBusy) {
			t.Errorf("second Open while open: %v, want ErrBusy", err)
		}
		p.Close()
		p2, err := o.Open(name, serial.Mode{Baud: 9600})
		if err != nil {
			t.Fatalf("Open after Close: %v", err)
		}
		p2.Close()
	})
}

// readFor reads until n bytes arrived or d passed.
func readFor(t *testing.T, p serial.Port, n int, d time.Duration) []byte {
	t.Helper()
	var got []byte
	deadline := time.Now().Add(d)
	buf := make([]byte, 256)
	for len(got) < n && time.Now().Before(deadline) {
		k, err := p.Read(buf, 100*time.Millisecond)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		got = append(got, buf[:k]...)
	}
	return got
}
