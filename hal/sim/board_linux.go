//go:build linux

package sim

import "time"

// open puts the device on a pseudo-terminal, behind its fault switch, and
// returns the terminal's path.
func (d *SerialDevice) open(s SerialSpec) (string, error) {
	pty, err := NewPTY()
	if err != nil {
		return "", err
	}
	switch s.Device {
	case "gps":
		d.GPS = &NMEAGPS{Lat: s.Lat, Lon: s.Lon, Fix: true, Time: time.Now()}
		pty.Emit(250*time.Millisecond, d.Fault.Emit(d.GPS.Sentences))
	case "modem":
		m := &ATModem{Signal: 20}
		pty.Serve(d.Fault.Responder(m.Respond))
	}
	d.close = pty.Close
	return pty.Path, nil
}
