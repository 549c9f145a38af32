package wasmhost

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// A module refused hardware (or dropping its log lines) must be reported:
// an operator needs to see it at once. But the names it asks for are its
// own choice, and a sensor can ask for hundreds of new ones every call, so
// reports are kept per module and per class of refusal, in O(1) memory:
// the first refusal of a class is reported at once, the later ones are
// counted (with a few sample names) and summarised once per refusalEvery.

// refusal is a class of refusal; a module's classes are reported apart.
type refusal uint8

const (
	gpioPlanning refusal = iota
	gpioNotRequested
	gpioNotGranted
	gpioRate
	i2cPlanning
	i2cNotRequested
	i2cNotGranted
	serialPlanning
	serialNotRequested
	serialNotGranted
	logFlood
	numRefusals
)

// refusalEvery is how often one class of one module's refusals is
// reported at most.
const refusalEvery = 10 * time.Minute

// A summary names at most maxSamples of the names refused, each cut to
// maxSample bytes.
const (
	maxSamples = 3
	maxSample  = 64
)

// watch is a module's bookkeeping of what it may do at a rate: its log
// lines, its GPIO writes, and the reports of what it was refused.
type watch struct {
	mu      sync.Mutex
	logs    bucket
	lines   []grantedLine // one per granted line; set at load, then only their buckets change
	tallies [numRefusals]tally
}

// tally is one class of a module's refusals since it was last reported.
type tally struct {
	reported time.Time // zero: never
	count    int64     // refusals since, not reported yet
	samples  [maxSamples]string
	cut      [maxSamples]bool // the sample is a prefix of the name
	n        int
	more     bool // names other than the samples were refused too
}

func (t *tally) add(name string) {
	t.count++
	s, cut := sample(name)
	for i := range t.n {
		if t.samples[i] == s && t.cut[i] == cut {
			return
		}
	}
	if t.n == maxSamples {
		t.more = true
		return
	}
	t.samples[t.n], t.cut[t.n] = strings.Clone(s), cut
	t.n++
}

// sample is name cut to maxSample bytes at a UTF-8 boundary.
func sample(name string) (string, bool) {
	if len(name) <= maxSample {
		return name, false
	}
	i := maxSample
	for i > maxSample-utf8.UTFMax && !utf8.RuneStart(name[i]) {
		i--
	}
	return name[:i], true
}

// pending is a report to make: the first refusal of its class, or a
// summary of those counted since the last report.
type pending struct {
	class   refusal
	first   bool
	name    string // first: the refused name
	count   int64
	since   time.Duration
	samples []string
	more    bool
}

func (t *tally) flush(c refusal, now time.Time) pending {
	p := pending{class: c, count: t.count, since: now.Sub(t.reported), more: t.more}
	for i := range t.n {
		s := t.samples[i]
		if t.cut[i] {
			s += "…"
		}
		p.samples = append(p.samples, s)
	}
	*t = tally{reported: now}
	return p
}

// note counts a refusal of class c and says whether to report now: the
// class's first refusal (or the first after a quiet interval), or one
// that comes after the interval with refusals counted.
func (w *watch) note(c refusal, name string, now time.Time, every time.Duration) (pending, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := &w.tallies[c]
	if t.reported.IsZero() || t.count == 0 && now.Sub(t.reported) >= every {
		t.reported = now
		return pending{class: c, first: true, name: name}, true
	}
	t.add(name)
	if now.Sub(t.reported) < every {
		return pending{}, false
	}
	return t.flush(c, now), true
}

// due takes the summaries whose interval has passed by now.
func (w *watch) due(now time.Time, every time.Duration) []pending {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ps []pending
	for c := range numRefusals {
		if t := &w.tallies[c]; t.count > 0 && now.Sub(t.reported) >= every {
			ps = append(ps, t.flush(c, now))
		}
	}
	return ps
}

// reportEvery is the interval between two reports of a class.
// TODO: Options.ReportEvery, when host.go can take it.
func (h *Host) reportEvery() time.Duration { return refusalEvery }

// refuse counts a refusal of class c of the named resource, and reports
// it if it is time to.
func (m *Module) refuse(c refusal, name string) {
	if p, due := m.watch.note(c, name, time.Now(), m.host.reportEvery()); due {
		m.report(p)
	}
}

// ReportRefusals reports the summaries of refusals (and dropped log lines)
// counted since their class was last reported, for the classes whose
// interval has passed by now. A summary is otherwise sent only with the
// module's next refusal of the class: call this periodically (a minute is
// often enough) so that the last of a burst is reported too.
func (m *Module) ReportRefusals(now time.Time) {
	for _, p := range m.watch.due(now, m.host.reportEvery()) {
		m.report(p)
	}
}

// report logs one line and notifies.
func (m *Module) report(p pending) {
	h := m.host
	name := m.manifest.Name
	problem := m.describe(p)
	if p.class == logFlood {
		h.opts.Logger.Warn("module log flood", "module", name, "limit_per_s", h.opts.LogRate, "problem", problem)
	} else {
		h.opts.Logger.Warn("module refused hardware access", "module", name, "problem", problem)
	}
	h.opts.Notify(name, problem)
}

// refusalText is what reports say of a class.
type refusalText struct {
	first   string // a format for the refused name
	summary string // what the module did, in a summary
	hint    string // what to do about it, in a summary
}

const planningHint = "conditions, effects and expansions may not touch hardware"

var refusalTexts = [numRefusals]refusalText{
	gpioPlanning:       {"asked for GPIO line %q while planning (" + planningHint + ")", "asked for GPIO lines while planning", planningHint},
	gpioNotRequested:   {"asked for GPIO line %q, but its manifest does not request gpio (sdk.Requests)", "asked for GPIO lines without requesting gpio", `its manifest must request gpio (sdk.Requests("gpio"))`},
	gpioNotGranted:     {"asked for GPIO line %q, which this device does not grant it (grants.gpio in ternd.yaml)", "asked for GPIO lines this device does not grant it", "grants.gpio in ternd.yaml grants lines"},
	i2cPlanning:        {"asked for I2C device %s while planning (" + planningHint + ")", "asked for I2C devices while planning", planningHint},
	i2cNotRequested:    {"asked for I2C device %s, but its manifest does not request i2c (sdk.Requests)", "asked for I2C devices without requesting i2c", `its manifest must request i2c (sdk.Requests("i2c"))`},
	i2cNotGranted:      {"asked for I2C device %s, which this device does not grant it (grants.i2c in ternd.yaml)", "asked for I2C devices this device does not grant it", "grants.i2c in ternd.yaml grants devices"},
	serialPlanning:     {"asked for serial port %s while planning (" + planningHint + ")", "asked for serial ports while planning", planningHint},
	serialNotRequested: {"asked for serial port %s, but its manifest does not request serial (sdk.Requests)", "asked for serial ports without requesting serial", `its manifest must request serial (sdk.Requests("serial"))`},
	serialNotGranted:   {"asked for serial port %s, which this device does not grant it (grants.serial in ternd.yaml)", "asked for serial ports this device does not grant it", "grants.serial in ternd.yaml grants ports"},
}

func (m *Module) describe(p pending) string {
	every := m.host.reportEvery()
	switch {
	case p.class == logFlood && p.first:
		return fmt.Sprintf("log flood: more than %d lines a second; lines are dropped until it slows down (reported again at most every %v, with counts)", m.host.opts.LogRate, every)
	case p.class == logFlood:
		return fmt.Sprintf("log flood: %d lines dropped in the last %v (more than %d lines a second)", p.count, p.since.Round(time.Second), m.host.opts.LogRate)
	case p.class == gpioRate && p.first:
		return fmt.Sprintf("wrote GPIO line %q more often than its grant allows: the write failed (sdk.ErrnoRate), as will those past the rate (reported again at most every %v, with counts). Relays and valves wear out. %s",
			p.name, every, m.raise(p.name))
	case p.class == gpioRate:
		return fmt.Sprintf("wrote GPIO lines more often than their grants allow %d times in the last %v (%s); the writes failed. %s",
			p.count, p.since.Round(time.Second), samples(p), m.raise(p.samples[0]))
	case p.first:
		return fmt.Sprintf(refusalTexts[p.class].first, p.name) + fmt.Sprintf("; more of the same are reported at most every %v, with counts", every)
	}
	t := refusalTexts[p.class]
	return fmt.Sprintf("%s %d times in the last %v (%s); %s", t.summary, p.count, p.since.Round(time.Second), samples(p), t.hint)
}

// raise says what a line's write rate is and how to raise it.
func (m *Module) raise(line string) string {
	l := m.watch.granted([]byte(line))
	if l == nil { // a sample cut short
		return fmt.Sprintf(`If this hardware can take more, raise the line's rate in grants.gpio in ternd.yaml, e.g. ["GPIO17@%s"] (the default is %s)`,
			writeRate{n: 2 * defaultWriteRate.n, per: time.Second}, DefaultGPIORate)
	}
	r := l.rate
	more := r
	more.n = min(2*r.n, maxWriteRate)
	return fmt.Sprintf("%s is granted %s, in bursts of %d: if this hardware can take more, raise it with grants.gpio: [%q] in ternd.yaml",
		line, r.words(), r.n, line+"@"+more.String())
}

// samples lists a summary's sample names.
func samples(p pending) string {
	var b strings.Builder
	for i, s := range p.samples {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(s))
	}
	if p.more {
		fmt.Fprintf(&b, " and more; at most %d names are kept", maxSamples)
	}
	return b.String()
}
