package window

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Spec is a window as people write it, in JSON or YAML, before Parse
// checks it:
//
//	{"days": ["mon", "tue"], "from": "22:00", "to": "06:00", "zone": "Europe/Berlin"}
type Spec struct {
	// Days are the days the window opens: "mon" … "sun" (or the whole
	// English name, any case). Empty: every day.
	Days []string `json:"days,omitempty" yaml:"days,omitempty"`
	// From and To are wall-clock times, "HH:MM", 00:00 to 23:59 ("24:00"
	// too for To). Empty From is 00:00; empty To is From (a whole day).
	From string `json:"from,omitempty" yaml:"from,omitempty"`
	To   string `json:"to,omitempty" yaml:"to,omitempty"`
	// Zone is an IANA time zone ("Europe/Berlin"). Empty: UTC. "Local"
	// is refused: a device's local zone is not the operator's to know.
	Zone string `json:"zone,omitempty" yaml:"zone,omitempty"`
}

// Window is a parsed Spec. The zero Window is never open. Windows are
// values: copy them freely.
type Window struct {
	spec     Spec
	days     [7]bool // by time.Weekday
	from, to int     // minutes after midnight; to may be 1440
	loc      *time.Location
}

// ErrBad wraps every error of Parse.
var ErrBad = errors.New("window: bad window")

// MaxDays bounds the days a Spec may list: there are seven, each at most
// once.
const MaxDays = 7

// Parse checks s and returns its window. Errors wrap ErrBad and say what
// to write instead.
func Parse(s Spec) (Window, error) {
	w := Window{spec: s}
	if len(s.Days) > MaxDays {
		return Window{}, fmt.Errorf("%w: %d days listed; a week has 7, list each at most once", ErrBad, len(s.Days))
	}
	for _, d := range s.Days {
		wd, ok := weekday(d)
		if !ok {
			return Window{}, fmt.Errorf("%w: day %.20q is not a day of the week; write mon, tue, wed, thu, fri, sat or sun", ErrBad, d)
		}
		if w.days[wd] {
			return Window{}, fmt.Errorf("%w: day %q is listed twice", ErrBad, d)
		}
		w.days[wd] = true
	}
	if len(s.Days) == 0 {
		w.days = [7]bool{true, true, true, true, true, true, true}
	}
	var err error
	if w.from, err = clock(s.From, "from", 0, false); err != nil {
		return Window{}, err
	}
	if w.to, err = clock(s.To, "to", w.from, true); err != nil {
		return Window{}, err
	}
	if w.to == 1440 && w.from == 0 {
		w.to = 0 // 00:00 to 24:00 is the whole day: the same as 00:00 to 00:00
	}
	switch s.Zone {
	case "", "UTC":
		w.loc = time.UTC
	case "Local":
		return Window{}, fmt.Errorf(`%w: zone "Local" means whatever zone the device is set to; name the zone, e.g. "Europe/Berlin", or leave it out for UTC`, ErrBad)
	default:
		if w.loc, err = time.LoadLocation(s.Zone); err != nil {
			return Window{}, fmt.Errorf("%w: unknown time zone %.60q: use an IANA name such as \"Europe/Berlin\" or \"America/New_York\" (%v)", ErrBad, s.Zone, err)
		}
	}
	return w, nil
}

// MustParse is Parse for windows known to be good (tests, examples); it
// panics on an error.
func MustParse(s Spec) Window {
	w, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return w
}

// Spec returns the window as it was written.
func (w Window) Spec() Spec { return w.spec }

// String writes the window the way people read it: "mon,tue 22:00-06:00 Europe/Berlin".
func (w Window) String() string {
	if w.loc == nil {
		return "never"
	}
	days := "every day"
	if len(w.spec.Days) > 0 {
		days = strings.Join(w.spec.Days, ",")
	}
	return fmt.Sprintf("%s %s-%s %s", days, hhmm(w.from), hhmm(w.end()), w.loc)
}

// MarshalJSON writes the Spec.
func (w Window) MarshalJSON() ([]byte, error) { return json.Marshal(w.spec) }

// UnmarshalJSON reads a Spec and parses it: a window read from JSON is
// checked.
func (w *Window) UnmarshalJSON(b []byte) error {
	var s Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%w: want an object {\"days\": [...], \"from\": \"HH:MM\", \"to\": \"HH:MM\", \"zone\": \"Area/City\"}: %v", ErrBad, err)
	}
	p, err := Parse(s)
	if err != nil {
		return err
	}
	*w = p
	return nil
}

// Open reports whether the window is open at t.
func (w Window) Open(t time.Time) bool {
	if w.loc == nil {
		return false
	}
	l := t.In(w.loc)
	// An opening on the day before may still be open (a night window),
	// and one on the day before that too, when a whole-day window opened
	// late on it; no window lasts longer than 25 hours.
	for back := -2; back <= 0; back++ {
		if start, end, ok := w.instance(l, back); ok && !t.Before(start) && t.Before(end) {
			return true
		}
	}
	return false
}

// Next returns the first instant after t at which the window opens or
// closes, so that a device can set a timer for it: Open(Next(t)) differs
// from Open(t). The zero time means it never changes (a window open every
// day all day, or the zero Window).
func (w Window) Next(t time.Time) time.Time {
	if w.loc == nil {
		return time.Time{}
	}
	now := w.Open(t)
	l := t.In(w.loc)
	var edges []time.Time
	for d := -2; d <= 8; d++ {
		if start, end, ok := w.instance(l, d); ok {
			edges = append(edges, start, end)
		}
	}
	slices.SortFunc(edges, func(a, b time.Time) int { return a.Compare(b) })
	for _, e := range edges {
		if e.After(t) && w.Open(e) != now {
			return e
		}
	}
	return time.Time{}
}

// instance is the opening of the window on the day days after l's date,
// in l's zone: its start and end, and whether the window opens that day.
func (w Window) instance(l time.Time, days int) (start, end time.Time, ok bool) {
	y, m, d := l.Date()
	day := time.Date(y, m, d+days, 12, 0, 0, 0, w.loc) // noon: never in a change
	if !w.days[day.Weekday()] {
		return time.Time{}, time.Time{}, false
	}
	y, m, d = day.Date()
	start = time.Date(y, m, d, 0, w.from, 0, 0, w.loc)
	endDay := d
	if w.to <= w.from {
		endDay++
	}
	end = time.Date(y, m, endDay, 0, w.to, 0, 0, w.loc)
	return start, end, end.After(start)
}

// end is To as written: From for a whole day.
func (w Window) end() int {
	if w.to == 0 && w.from == 0 {
		return 0
	}
	return w.to
}

func hhmm(min int) string { return fmt.Sprintf("%02d:%02d", min/60, min%60) }

// clock reads "HH:MM" as minutes after midnight; empty is def. allow24
// lets "24:00" through (the end of a day).
func clock(s, field string, def int, allow24 bool) (int, error) {
	if s == "" {
		return def, nil
	}
	bad := func(why string) error {
		return fmt.Errorf("%w: %q %.20q %s; write a 24-hour time as HH:MM, e.g. \"06:30\"", ErrBad, field, s, why)
	}
	if len(s) != 5 || s[2] != ':' {
		return 0, bad("is not HH:MM")
	}
	digits := func(a, b byte) (int, bool) {
		if a < '0' || a > '9' || b < '0' || b > '9' {
			return 0, false
		}
		return int(a-'0')*10 + int(b-'0'), true
	}
	h, ok1 := digits(s[0], s[1])
	m, ok2 := digits(s[3], s[4])
	switch {
	case !ok1 || !ok2:
		return 0, bad("is not HH:MM")
	case h == 24 && m == 0 && allow24:
		return 1440, nil
	case h > 23:
		return 0, bad("has an hour over 23")
	case m > 59:
		return 0, bad("has minutes over 59")
	}
	return h*60 + m, nil
}

// weekday reads a day's name: its first three letters or the whole
// English name, any case.
func weekday(s string) (time.Weekday, bool) {
	l := strings.ToLower(s)
	for d := time.Sunday; d <= time.Saturday; d++ {
		full := strings.ToLower(d.String())
		if l == full || l == full[:3] {
			return d, true
		}
	}
	return 0, false
}
