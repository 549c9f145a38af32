//go:build linux

package testbench

import (
	"time"

	"github.com/tern-iot/tern/hal/serial"
	"github.com/tern-iot/tern/hal/serialdev"
	"github.com/tern-iot/tern/hal/sim"
)

// openSerial puts a simulated device on a pseudo-terminal, behind its
// fault switch, and returns the terminal's path.
func openSerial(s SerialSpec, d *serialDevice) (string, func() error, error) {
	pty, err := sim.NewPTY()
	if err != nil {
		return "", nil, err
	}
	switch s.Device {
	case "gps":
		d.gps = &sim.NMEAGPS{Lat: s.Lat, Lon: s.Lon, Fix: true, Time: time.Now()}
		pty.Emit(250*time.Millisecond, d.fault.Emit(d.gps.Sentences))
	case "modem":
		m := &sim.ATModem{Signal: 20}
		pty.Serve(d.fault.Responder(m.Respond))
	}
	return pty.Path, pty.Close, nil
}

func serialOpener(ports map[string]string) serial.Opener { return serialdev.Opener{Devices: ports} }
