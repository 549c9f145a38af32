package wasmhost

import (
	"strings"
	"testing"
	"time"
)

func TestParseGPIOGrant(t *testing.T) {
	for _, tc := range []struct {
		grant string
		line  string
		rate  writeRate
	}{
		{"GPIO17", "GPIO17", writeRate{200, time.Second}},
		{"GPIO17@10/s", "GPIO17", writeRate{10, time.Second}},
		{"GPIO17@600/m", "GPIO17", writeRate{600, time.Minute}},
		{"P9_12@1/h", "P9_12", writeRate{1, time.Hour}},
		{"GPIO17@1000000/s", "GPIO17", writeRate{1_000_000, time.Second}}, // the largest
	} {
		line, rate, err := parseGPIOGrant(tc.grant)
		if err != nil || line != tc.line || rate != tc.rate {
			t.Errorf("parseGPIOGrant(%q) = %q, %v, %v; want %q, %v", tc.grant, line, rate, err, tc.line, tc.rate)
		}
	}
	for _, bad := range []string{"", "@10/s", "GPIO17@", "GPIO17@10", "GPIO17@10/d", "GPIO17@0/s", "GPIO17@-1/s",
		"GPIO17@1000001/s", "GPIO17@ten/s", "GPIO17@10/s/s", "GPIO17@1.5/s", "GPIO17@99999999999999999999/s"} {
		_, _, err := parseGPIOGrant(bad)
		if err == nil || !strings.Contains(err.Error(), "GPIO17@10/s") || !strings.Contains(err.Error(), "GPIO grant") {
			t.Errorf("parseGPIOGrant(%q): err = %v, want one that shows the syntax", bad, err)
		}
	}
}

func TestGrantsCheck(t *testing.T) {
	for name, tc := range map[string]struct {
		g    Grants
		want string // "" for none
	}{
		"none":          {Grants{}, ""},
		"rates":         {Grants{GPIO: []string{"GPIO17@10/s", "GPIO22", "GPIO27@600/m"}}, ""},
		"bad rate":      {Grants{GPIO: []string{"GPIO17@fast"}}, `GPIO grant "GPIO17@fast"`},
		"twice":         {Grants{GPIO: []string{"GPIO17", "GPIO17@5/s"}}, "line GPIO17 is granted twice"},
		"bad i2c":       {Grants{I2C: []string{"i2c1"}}, "I2C grant"},
		"bad serial":    {Grants{Serial: []string{"ttyS0@fast"}}, "serial grant"},
		"good i2c, tty": {Grants{I2C: []string{"i2c1:0x48"}, Serial: []string{"ttyS0@9600"}}, ""},
	} {
		err := checkGrants(tc.g)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: check() = %v, want %q", name, err, tc.want)
		}
	}
}

// A rate does not change which line a grant names.
func TestGrantedLinesWithRates(t *testing.T) {
	w := watch{lines: grantedLines(Grants{GPIO: []string{"GPIO17@10/s", "GPIO22"}})}
	for line, want := range map[string]bool{"GPIO17": true, "GPIO22": true, "GPIO17@10/s": false, "GPIO27": false, "GPIO1": false, "": false} {
		if got := w.granted([]byte(line)) != nil; got != want {
			t.Errorf("granted(%q) = %v", line, got)
		}
	}
	if r := w.granted([]byte("GPIO17")).rate; r != (writeRate{10, time.Second}) || r.String() != "10/s" {
		t.Errorf("GPIO17's rate = %v", r)
	}
	if r := w.granted([]byte("GPIO22")).rate; r.String() != DefaultGPIORate {
		t.Errorf("GPIO22's rate = %v, want the default %s", r, DefaultGPIORate)
	}
}

func FuzzParseGPIOGrant(f *testing.F) {
	for _, s := range []string{"GPIO17", "GPIO17@10/s", "GPIO17@600/m", "x@1/h", "@", "a@b/c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		line, r, err := parseGPIOGrant(s)
		if err != nil {
			return
		}
		if line == "" || r.n < 1 || r.n > maxWriteRate || r.perSecond() <= 0 {
			t.Fatalf("parseGPIOGrant(%q) = %q, %+v", s, line, r)
		}
		w := watch{lines: grantedLines(Grants{GPIO: []string{s}})}
		if l := w.granted([]byte(line)); l == nil || l.rate != r {
			t.Fatalf("grant %q does not grant its own line %q at %v: %+v", s, line, r, w.lines)
		}
	})
}
