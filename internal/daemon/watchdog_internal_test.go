package daemon

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/internal/sdnotify"
)

// The watchdog is fed only while the agent loop is not stuck in a step:
// through a real notification socket, a tick with a stuck loop sends a
// STATUS line and no WATCHDOG=1.
func TestWatchdogPingsOnlyWhileHealthy(t *testing.T) {
	name := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Setenv("NOTIFY_SOCKET", name)

	busy := []time.Duration{0, time.Second, watchdogStall + time.Minute, 0}
	i := 0
	ticks := make(chan time.Time) // unbuffered: a send returns once the previous tick was handled
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		pingWhileHealthy(ctx, ticks, func() time.Duration { b := busy[i]; i++; return b }, slog.New(slog.DiscardHandler))
	}()
	for range busy {
		ticks <- time.Now()
	}
	cancel()
	<-done
	sdnotify.Notify("STATUS=end")

	var got []string
	buf := make([]byte, 512)
	for len(got) == 0 || got[len(got)-1] != "STATUS=end" {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		got = append(got, string(buf[:n]))
	}
	want := []string{"WATCHDOG=1", "WATCHDOG=1", "STATUS=agent loop stuck", "WATCHDOG=1", "STATUS=end"}
	if len(got) != len(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for k := range want {
		if !strings.HasPrefix(got[k], want[k]) {
			t.Errorf("notification %d: %q, want %q", k, got[k], want[k])
		}
	}
}
