package main

import (
	"math"
	"testing"
)

func TestParse(t *testing.T) {
	// The RMC example of the NMEA 0183 references, and a corrupted copy.
	text := []byte("$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A\r\n" +
		"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6B\r\n$GPRMC,12")
	fixes, rest := Parse(text)
	if len(fixes) != 1 || string(rest) != "$GPRMC,12" {
		t.Fatalf("fixes %+v, rest %q: want one (the bad checksum ignored) and the partial line kept", fixes, rest)
	}
	f := fixes[0]
	if !f.Fix || math.Abs(f.Lat-48.1173) > 1e-4 || math.Abs(f.Lon-11.516667) > 1e-4 {
		t.Fatalf("fix %+v, want 48.1173 N, 11.5167 E", f)
	}
}
