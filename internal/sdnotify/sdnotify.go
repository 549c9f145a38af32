// Package sdnotify speaks systemd's notification protocol (sd_notify(3)):
// datagrams of KEY=VALUE lines on the unix socket named by $NOTIFY_SOCKET.
// ternd runs as a Type=notify service: it says READY=1 once it serves,
// and WATCHDOG=1 while its agent loop makes progress, so systemd restarts
// a hung agent (WatchdogSec=). It is a few lines over the standard
// library, not a dependency.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// Messages ternd sends.
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
	Watchdog = "WATCHDOG=1"
)

// Notify sends state (one or more KEY=VALUE lines) to systemd. Without
// $NOTIFY_SOCKET (not started by systemd as a notify service) it does
// nothing and returns nil. A socket name starting with @ is an abstract
// socket, as systemd allows.
func Notify(state string) error {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sdnotify: %s: %w", name, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sdnotify: %s: %w", name, err)
	}
	return nil
}

// WatchdogInterval is the watchdog timeout systemd set for this process
// (WatchdogSec=, passed as $WATCHDOG_USEC), or 0 if there is none or it is
// meant for another process ($WATCHDOG_PID). Ping at half of it.
func WatchdogInterval() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond
}
