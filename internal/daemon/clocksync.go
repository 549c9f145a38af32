package daemon

import (
	"os"

	"golang.org/x/sys/unix"
)

// clockSynced reports whether the wall clock is known to be right: the
// kernel's NTP status says synchronised (chrony, ntpd and
// systemd-timesyncd set it), or systemd-timesyncd says it synchronised
// (its flag file). A Raspberry Pi has no real-time clock: until then its
// clock reads the time it last saved, and jobs with a wall-clock time
// wait (docs/jobs.md).
func clockSynced() bool {
	var tx unix.Timex
	if state, err := unix.Adjtimex(&tx); err == nil && state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0 {
		return true
	}
	_, err := os.Stat(timesyncFlag)
	return err == nil
}

// timesyncFlag is the file systemd-timesyncd creates once it has
// synchronised the clock.
const timesyncFlag = "/run/systemd/timesync/synchronized"
