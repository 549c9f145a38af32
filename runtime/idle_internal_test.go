package runtime

import (
	"context"
	"testing"
	"time"
)

type nopReporter struct{}

func (nopReporter) PublishState(context.Context, Status) error { return nil }
func (nopReporter) PublishEvent(context.Context, Event) error  { return nil }

// An agent with no sensor sleeps until something is due: the next attempt,
// the heartbeat, a summary of held-back events; and tries again after a
// second what failed, as when its loop ticked every second.
func TestIdleWait(t *testing.T) {
	now := time.Now()
	cases := map[string]struct {
		set      func(a *Agent)
		min, max time.Duration
	}{
		"nothing due":            {func(a *Agent) {}, 59 * time.Minute, time.Hour},
		"no reporter: heartbeat": {func(a *Agent) { a.opts.Reporter = nil; a.lastSent = nil }, time.Hour, time.Hour},
		"the next attempt":       {func(a *Agent) { a.nextTry = now.Add(5 * time.Second) }, 4 * time.Second, 5 * time.Second},
		"a summary":              {func(a *Agent) { a.evRates["m"] = &eventBucket{dropped: 3, since: now.Add(-50 * time.Second)} }, 9 * time.Second, 10 * time.Second},
		"heartbeat overdue":      {func(a *Agent) { a.sentAt = now.Add(-2 * time.Hour) }, 10 * time.Millisecond, 10 * time.Millisecond},
		"status never sent":      {func(a *Agent) { a.lastSent = nil }, idleAgain, idleAgain},
		"status refused":         {func(a *Agent) { a.stateFails = true }, idleAgain, idleAgain},
		"events refused":         {func(a *Agent) { a.events = []Event{{Kind: EventConverged}} }, idleAgain, idleAgain},
		"a rollback due":         {func(a *Agent) { a.lastFailure["m"] = "trap" }, idleAgain, idleAgain},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			a := &Agent{
				opts:    Options{Heartbeat: time.Hour, Reporter: nopReporter{}}.withDefaults(),
				evRates: map[string]*eventBucket{}, lastFailure: map[string]string{},
				lastSent: []byte(`{}`), sentAt: now,
			}
			c.set(a)
			if got := a.idleWait(); got < c.min || got > c.max {
				t.Fatalf("idleWait = %v, want %v..%v", got, c.min, c.max)
			}
		})
	}
}
