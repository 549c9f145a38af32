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

// monotonicNow is the time on the monotonic clock alone, which is all a
// bucket compares. time.Now reads the wall clock as well, and on a VM that
// second read cost a gpio_write about 25 ns.
func monotonicNow() time.Time { return start.Add(time.Since(start)) }

// allowWrite spends one of the module's writes to a granted line.
func (w *watch) allowWrite(l *grantedLine, now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return l.writes.take(now, l.perSecond, float64(l.rate.n))
}

// allowLog spends one of the module's log lines: rate a second, in bursts
// of twice as many.
func (w *watch) allowLog(now time.Time, rate int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.logs.take(now, float64(rate), float64(2*rate))
}
