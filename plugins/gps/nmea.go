package main

import (
	"bytes"
	"strconv"
	"strings"
)

// Fix is a position from an RMC sentence.
type Fix struct {
	Fix bool    `json:"fix"`
	Lat float64 `json:"lat"`
	Lon float64 `json:"lon"`
}

// Parse takes the RMC fixes out of NMEA text and returns the text after
// the last complete line (to keep for the next read).
func Parse(text []byte) ([]Fix, []byte) {
	var fixes []Fix
	for {
		i := bytes.IndexByte(text, '\n')
		if i < 0 {
			return fixes, text
		}
		line := strings.TrimSpace(string(text[:i]))
		text = text[i+1:]
		if f, ok := rmc(line); ok {
			fixes = append(fixes, f)
		}
	}
}

// rmc reads "$GPRMC,hhmmss,A,ddmm.mmmm,N,dddmm.mmmm,E,...*CS".
func rmc(line string) (Fix, bool) {
	body, sum, ok := strings.Cut(strings.TrimPrefix(line, "$"), "*")
	if !ok || !strings.HasPrefix(line, "$") || !checksum(body, sum) {
		return Fix{}, false
	}
	f := strings.Split(body, ",")
	if len(f) < 7 || !strings.HasSuffix(f[0], "RMC") {
		return Fix{}, false
	}
	lat, ok1 := angle(f[3], 2, f[4] == "S")
	lon, ok2 := angle(f[5], 3, f[6] == "W")
	if !ok1 || !ok2 {
		return Fix{Fix: false}, f[2] != "A"
	}
	return Fix{Fix: f[2] == "A", Lat: lat, Lon: lon}, true
}

func checksum(body, sum string) bool {
	var x byte
	for i := 0; i < len(body); i++ {
		x ^= body[i]
	}
	want, err := strconv.ParseUint(sum, 16, 8)
	return err == nil && byte(want) == x
}

// angle reads NMEA's (d)ddmm.mmmm.
func angle(s string, degDigits int, negative bool) (float64, bool) {
	if len(s) < degDigits+2 {
		return 0, false
	}
	d, err1 := strconv.Atoi(s[:degDigits])
	m, err2 := strconv.ParseFloat(s[degDigits:], 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	v := float64(d) + m/60
	if negative {
		v = -v
	}
	return v, true
}
