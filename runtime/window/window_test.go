package window_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/runtime/window"
)

func at(t *testing.T, zone, s string) time.Time {
	t.Helper()
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Fatal(err)
	}
	v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestOpen(t *testing.T) {
	night := window.Spec{Days: []string{"mon"}, From: "22:00", To: "06:00", Zone: "Europe/Berlin"}
	// 2026-03-02 is a Monday.
	tests := []struct {
		name string
		spec window.Spec
		at   string // in the spec's zone (UTC when empty)
		want bool
	}{
		{"night before it opens", night, "2026-03-02 21:59", false},
		{"night opens", night, "2026-03-02 22:00", true},
		{"night after midnight, opened monday", night, "2026-03-03 05:59", true},
		{"night closes", night, "2026-03-03 06:00", false},
		{"night monday early: opened sunday, which it does not", night, "2026-03-02 05:00", false},
		{"night tuesday evening", night, "2026-03-03 23:00", false},
		{"day window", window.Spec{From: "08:00", To: "17:30"}, "2026-03-04 17:29", true},
		{"day window end", window.Spec{From: "08:00", To: "17:30"}, "2026-03-04 17:30", false},
		{"weekend, full name any case", window.Spec{Days: []string{"Saturday", "SUN"}}, "2026-03-08 23:59", true},
		{"weekend on monday", window.Spec{Days: []string{"sat", "sun"}}, "2026-03-09 00:00", false},
		{"always", window.Spec{}, "2026-03-09 13:00", true},
		{"to 24:00", window.Spec{From: "22:00", To: "24:00"}, "2026-03-09 23:59", true},
		{"to 24:00 ends at midnight", window.Spec{From: "22:00", To: "24:00"}, "2026-03-10 00:00", false},
		{"from equal to: 24 hours from it", window.Spec{Days: []string{"wed"}, From: "08:00", To: "08:00"}, "2026-03-05 07:59", true},
		{"from equal to: closed after", window.Spec{Days: []string{"wed"}, From: "08:00", To: "08:00"}, "2026-03-05 08:00", false},
		// Europe/Berlin moves to summer time on 2026-03-29 at 02:00 (to
		// 03:00) and back on 2026-10-25 at 03:00 (to 02:00).
		{"spring day, wall clock 08:00", window.Spec{From: "08:00", To: "09:00", Zone: "Europe/Berlin"}, "2026-03-29 08:30", true},
		{"autumn day, wall clock 08:00", window.Spec{From: "08:00", To: "09:00", Zone: "Europe/Berlin"}, "2026-10-25 08:30", true},
		{"autumn day, not an hour early", window.Spec{From: "08:00", To: "09:00", Zone: "Europe/Berlin"}, "2026-10-25 07:30", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			zone := tt.spec.Zone
			if zone == "" {
				zone = "UTC"
			}
			w := window.MustParse(tt.spec)
			if got := w.Open(at(t, zone, tt.at)); got != tt.want {
				t.Errorf("%v Open(%s) = %v, want %v", w, tt.at, got, tt.want)
			}
		})
	}
}

func TestOpenAcrossZones(t *testing.T) {
	// 06:00 in New York is 11:00 UTC in winter: the instant counts, not
	// the zone it is written in.
	w := window.MustParse(window.Spec{From: "06:00", To: "07:00", Zone: "America/New_York"})
	if !w.Open(at(t, "UTC", "2026-01-14 11:30")) {
		t.Error("06:30 in New York, written in UTC, is not in the window")
	}
	if w.Open(at(t, "UTC", "2026-01-14 06:30")) {
		t.Error("06:30 UTC is 01:30 in New York, but the window is open")
	}
}

func TestNext(t *testing.T) {
	tests := []struct {
		name     string
		spec     window.Spec
		from, to string // in the spec's zone
		zero     bool
	}{
		{"opens tonight", window.Spec{From: "22:00", To: "06:00", Zone: "Europe/Berlin"}, "2026-03-02 12:00", "2026-03-02 22:00", false},
		{"closes in the morning", window.Spec{From: "22:00", To: "06:00", Zone: "Europe/Berlin"}, "2026-03-02 23:00", "2026-03-03 06:00", false},
		{"at the edge: the next one", window.Spec{From: "22:00", To: "06:00", Zone: "Europe/Berlin"}, "2026-03-02 22:00", "2026-03-03 06:00", false},
		{"weekly: a week ahead", window.Spec{Days: []string{"mon"}, From: "01:00", To: "02:00"}, "2026-03-02 02:00", "2026-03-09 01:00", false},
		{"adjacent days merge", window.Spec{Days: []string{"mon", "tue"}}, "2026-03-02 10:00", "2026-03-04 00:00", false},
		{"always open: never", window.Spec{}, "2026-03-02 10:00", "", true},
		// On 2026-03-29 Berlin's clocks go from 02:00 to 03:00: 08:00
		// is 06:00 UTC, not 07:00 as the day before.
		{"across spring change", window.Spec{From: "08:00", To: "09:00", Zone: "Europe/Berlin"}, "2026-03-28 09:30", "2026-03-29 08:00", false},
		{"across autumn change", window.Spec{From: "08:00", To: "09:00", Zone: "Europe/Berlin"}, "2026-10-24 09:30", "2026-10-25 08:00", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			zone := tt.spec.Zone
			if zone == "" {
				zone = "UTC"
			}
			w := window.MustParse(tt.spec)
			from := at(t, zone, tt.from)
			got := w.Next(from)
			if tt.zero {
				if !got.IsZero() {
					t.Fatalf("Next(%s) = %v, want never (zero)", tt.from, got)
				}
				return
			}
			if want := at(t, zone, tt.to); !got.Equal(want) {
				t.Fatalf("Next(%s) = %v, want %v", tt.from, got.In(want.Location()), want)
			}
			if w.Open(got) == w.Open(from) {
				t.Errorf("Open(Next) = Open(t) = %v: Next is no edge", w.Open(got))
			}
		})
	}
}

func TestNextDSTLength(t *testing.T) {
	// A night window across the spring change lasts an hour less in
	// real time; across the autumn one, an hour more.
	w := window.MustParse(window.Spec{From: "22:00", To: "06:00", Zone: "Europe/Berlin"})
	for _, tt := range []struct {
		night string
		want  time.Duration
	}{{"2026-03-28 22:00", 7 * time.Hour}, {"2026-10-24 22:00", 9 * time.Hour}, {"2026-06-10 22:00", 8 * time.Hour}} {
		open := at(t, "Europe/Berlin", tt.night)
		if got := w.Next(open).Sub(open); got != tt.want {
			t.Errorf("the night from %s lasts %v, want %v", tt.night, got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct {
		spec window.Spec
		want string
	}{
		{window.Spec{Days: []string{"mon", "funday"}}, `day "funday"`},
		{window.Spec{Days: []string{"mon", "Monday"}}, "listed twice"},
		{window.Spec{Days: []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun", "mon"}}, "8 days"},
		{window.Spec{From: "25:00"}, "hour over 23"},
		{window.Spec{From: "24:00"}, "hour over 23"},
		{window.Spec{To: "12:60"}, "minutes over 59"},
		{window.Spec{From: "8:00"}, "not HH:MM"},
		{window.Spec{From: "ab:cd"}, "not HH:MM"},
		{window.Spec{Zone: "Mars/Olympus"}, "unknown time zone"},
		{window.Spec{Zone: "Local"}, `"Local"`},
	} {
		_, err := window.Parse(tt.spec)
		if !errors.Is(err, window.ErrBad) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%+v) = %v, want ErrBad saying %q", tt.spec, err, tt.want)
		}
	}
}

func TestJSON(t *testing.T) {
	var w window.Window
	if err := w.UnmarshalJSON([]byte(`{"days":["sat"],"from":"10:00","to":"11:00","zone":"Europe/Berlin"}`)); err != nil {
		t.Fatal(err)
	}
	if !w.Open(at(t, "Europe/Berlin", "2026-03-07 10:30")) {
		t.Error("window read from JSON is not open when it should be")
	}
	if err := w.UnmarshalJSON([]byte(`{"days":["sat"],"from":"10"}`)); !errors.Is(err, window.ErrBad) {
		t.Errorf("bad from read from JSON: %v, want ErrBad", err)
	}
	if (window.Window{}).Open(time.Now()) {
		t.Error("the zero Window is open")
	}
}
