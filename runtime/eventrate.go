package runtime

import (
	"fmt"
	"time"
)

// Each module's module.error events are rate-bounded: a module that fails
// every call (a sensor every 50 ms) must not fill the outbox, nor hold up
// the reports of everything else behind its own. Past the bound its events
// are counted, and one event says how many were held back.
const (
	moduleEventBurst = 20
	moduleEventEvery = 6 * time.Second // one more allowed every 6 s: 10 a minute
)

type eventBucket struct {
	tokens  float64
	last    time.Time
	dropped int
	since   time.Time // first drop since the last summary
}

// allow spends a token of module's bucket; it returns false when the event
// is to be held back (and counts it). Call with a.mu held.
func (b *eventBucket) allow(now time.Time) bool {
	if b.last.IsZero() {
		b.tokens = moduleEventBurst
	} else {
		b.tokens = min(moduleEventBurst, b.tokens+now.Sub(b.last).Seconds()/moduleEventEvery.Seconds())
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	if b.dropped == 0 {
		b.since = now
	}
	b.dropped++
	return false
}

// summary returns the event that reports what was held back, if anything
// was and a minute has passed, and resets the count.
func (b *eventBucket) summary(module string, now time.Time) (Event, bool) {
	if b.dropped == 0 || now.Sub(b.since) < time.Minute {
		return Event{}, false
	}
	e := Event{Kind: EventModuleError, Module: module, Message: fmt.Sprintf(
		"%d more module.error events of this module were held back in the last %v (at most %d in a burst, then one every %v, per module)",
		b.dropped, now.Sub(b.since).Round(time.Second), moduleEventBurst, moduleEventEvery)}
	b.dropped = 0
	return e, true
}
