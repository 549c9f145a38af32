package firmware_test

import (
	"net"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// ternd under a notification socket, as systemd runs it with Type=notify
// and WatchdogSec=: it says READY=1 once it serves, then WATCHDOG=1 at
// half the watchdog interval, and STOPPING=1 when told to stop.
func TestSystemdNotify(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("ternd runs on Linux")
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := writeConfig(t, filepath.Join(dir, "ternd.yaml"), "device: pi-notify", "board: sim", "data_dir: "+filepath.Join(dir, "data"))
	p := startEnv(t, []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=1000000", "WATCHDOG_PID="},
		ternd(t, runtime.GOARCH, "", "v1-test"), "run", "--config", cfg)
	read := func() string {
		t.Helper()
		buf := make([]byte, 512)
		c.SetReadDeadline(time.Now().Add(wait))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}
	if got := read(); got != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", got)
	}
	for i := 0; i < 2; i++ {
		if got := read(); got != "WATCHDOG=1" {
			t.Fatalf("notification %q, want WATCHDOG=1", got)
		}
	}
	p.stop()
	for {
		if got := read(); got == "STOPPING=1" {
			break
		} else if got != "WATCHDOG=1" {
			t.Fatalf("notification %q, want STOPPING=1", got)
		}
	}
}
