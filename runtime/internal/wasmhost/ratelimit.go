package wasmhost

import "time"

// bucket is a token bucket. Its caller holds the lock that guards it.
type bucket struct {
	tokens float64
	last   time.Time // the latest now it was given; zero: full, never used
}

// take spends a token if there is one, after refilling at rate tokens a
// second up to burst. A now earlier than one already seen (callers read
// the clock before they take the lock) refills nothing.
func (b *bucket) take(now time.Time, rate, burst float64) bool {
	switch {
	case b.last.IsZero():
		b.tokens, b.last = burst, now
	case now.After(b.last):
		b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// lineWrites is the write budget of one granted line.
type lineWrites struct {
	rate writeRate
	b    bucket
}

// allowWrite spends one of the module's writes to line, which the caller
// has checked is granted: the buckets are as many as the granted lines.
func (w *watch) allowWrite(line string, g Grants, now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	lw := w.writes[line]
	if lw == nil {
		if w.writes == nil {
			w.writes = map[string]*lineWrites{}
		}
		lw = &lineWrites{rate: g.gpioRate(line)}
		w.writes[line] = lw
	}
	return lw.b.take(now, lw.rate.perSecond(), float64(lw.rate.n))
}

// allowLog spends one of the module's log lines: rate a second, in bursts
// of twice as many.
func (w *watch) allowLog(now time.Time, rate int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.logs.take(now, float64(rate), float64(2*rate))
}
