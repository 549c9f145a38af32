// Command gps is a job module that reports a GPS receiver's position from
// its NMEA 0183 sentences on a serial port: /position is {"fix": bool,
// "lat": degrees, "lon": degrees}. Sentences with a bad checksum are
// ignored.
//
// Configuration:
//
//	config:
//	  port: serial0
//	  baud: 9600
package main

import (
	"fmt"
	"time"

	"github.com/tern-iot/tern/sdk"
)

func init() {
	sdk.Module("gps", "0.1.0")
	sdk.Requests("serial")
	sdk.Sensor("position", "/position", time.Second, sense)
}

func main() {}

type config struct {
	Port string `json:"port"`
	Baud int    `json:"baud"`
}

// sense reads the port for up to 1.5 s (NMEA receivers talk once a second)
// and reports the last complete RMC sentence.
func sense(c *sdk.Context) (any, error) {
	loaded, err := sdk.ConfigOf[config](c)
	if err != nil || loaded.Port == "" {
		return nil, fmt.Errorf("gps: configure port (and baud, default 9600): %v", err)
	}
	if loaded.Baud == 0 {
		loaded.Baud = 9600
	}
	p, err := sdk.SerialOpen(loaded.Port, loaded.Baud)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	var text []byte
	buf := make([]byte, 256)
	var last *Fix
	for deadline := time.Now().Add(1500 * time.Millisecond); time.Now().Before(deadline) && last == nil; {
		n, err := p.Read(buf, 200*time.Millisecond)
		if err != nil {
			return nil, err
		}
		text = append(text, buf[:n]...)
		var fixes []Fix
		fixes, text = Parse(text)
		if len(fixes) > 0 {
			last = &fixes[len(fixes)-1]
		}
	}
	if last == nil {
		return nil, fmt.Errorf("gps: no RMC sentence on %s within 1.5 s", loaded.Port)
	}
	return last, nil
}
