package sim

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"time"
)

// NMEAGPS is a GPS receiver that reports its fix as NMEA 0183 sentences
// (GGA and RMC, each with its checksum), as the u-blox and MediaTek modules
// on hobby boards do at 9600 baud.
type NMEAGPS struct {
	mu       sync.Mutex
	Lat, Lon float64 // degrees, north and east positive
	Fix      bool
	Time     time.Time
}

// Move sets the position the receiver reports.
func (g *NMEAGPS) Move(lat, lon float64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.Lat, g.Lon = lat, lon
}

// Sentences are the GGA and RMC sentences for the current fix.
func (g *NMEAGPS) Sentences() []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	t := g.Time.UTC()
	hms := t.Format("150405") + ".00"
	lat, ns := nmeaAngle(g.Lat, 2), "N"
	if g.Lat < 0 {
		ns = "S"
	}
	lon, ew := nmeaAngle(g.Lon, 3), "E"
	if g.Lon < 0 {
		ew = "W"
	}
	quality, status := 0, "V"
	if g.Fix {
		quality, status = 1, "A"
	}
	gga := fmt.Sprintf("GPGGA,%s,%s,%s,%s,%s,%d,08,0.9,545.4,M,46.9,M,,", hms, lat, ns, lon, ew, quality)
	rmc := fmt.Sprintf("GPRMC,%s,%s,%s,%s,%s,%s,0.0,0.0,%s,,,A", hms, status, lat, ns, lon, ew, t.Format("020106"))
	return []byte(NMEASentence(gga) + NMEASentence(rmc))
}

// NMEASentence frames a sentence body: "$" body "*" checksum CR LF, the
// checksum being the XOR of the body's bytes in two hex digits.
func NMEASentence(body string) string {
	var sum byte
	for i := 0; i < len(body); i++ {
		sum ^= body[i]
	}
	return fmt.Sprintf("$%s*%02X\r\n", body, sum)
}

// nmeaAngle writes degrees as NMEA's ddmm.mmmm (dddmm.mmmm for longitude).
func nmeaAngle(deg float64, width int) string {
	deg = math.Abs(deg)
	d := math.Floor(deg)
	m := (deg - d) * 60
	return fmt.Sprintf("%0*d%07.4f", width, int(d), m)
}

// ATModem is a cellular modem's AT command interpreter: it answers each
// command line (ended by CR) as Hayes-style modems do, "OK" or "ERROR" on a
// line of its own, with echo off (ATE0).
type ATModem struct {
	mu   sync.Mutex
	line []byte
	// Signal is what AT+CSQ reports (0-31, 99 unknown).
	Signal int
}

// Respond implements Responder.
func (m *ATModem) Respond(in []byte) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []byte
	for _, c := range in {
		if c == '\n' {
			continue
		}
		if c != '\r' {
			m.line = append(m.line, c)
			continue
		}
		out = append(out, m.answer(strings.ToUpper(strings.TrimSpace(string(m.line))))...)
		m.line = m.line[:0]
	}
	return out
}

func (m *ATModem) answer(cmd string) string {
	switch cmd {
	case "":
		return ""
	case "AT", "ATE0":
		return "\r\nOK\r\n"
	case "ATI":
		return "\r\ntern simulated modem\r\nOK\r\n"
	case "AT+CSQ":
		return fmt.Sprintf("\r\n+CSQ: %d,99\r\nOK\r\n", m.Signal)
	}
	return "\r\nERROR\r\n"
}
