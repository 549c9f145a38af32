package wasmhost

import (
	"context"
	"sync/atomic"
	"time"
)

// clock is what an instance's WASI clocks read: the real time, except
// during a planning call, when they read the time the plan started, so a
// job's condition cannot see time pass (or differ from one condition to the
// next) while the planner searches.
type clock struct {
	frozen   atomic.Int64 // Unix nanoseconds; 0: not frozen
	last     atomic.Int64 // the last nanotime returned: it never goes back
	deadline atomic.Int64 // Unix nanoseconds the current call must end by; 0: none
}

// nanosleep is what WASI sleeps (poll_oneoff) do. wazero's own sleeps are
// not bound to the call's context, so a module could sleep far past its
// deadline; this one never sleeps past it, and while planning (clock
// frozen) does not sleep at all: time does not pass during a search.
func (c *clock) nanosleep(ns int64) {
	if c.frozen.Load() != 0 || ns <= 0 {
		return
	}
	d := time.Duration(ns)
	if dl := c.deadline.Load(); dl != 0 {
		d = min(d, time.Until(time.Unix(0, dl)))
	}
	if d > 0 {
		time.Sleep(d)
	}
}

func (c *clock) freeze(t time.Time) {
	if t.IsZero() {
		c.frozen.Store(0)
		return
	}
	c.frozen.Store(t.UnixNano())
}

func (c *clock) now() time.Time {
	if f := c.frozen.Load(); f != 0 {
		return time.Unix(0, f)
	}
	return time.Now()
}

func (c *clock) walltime() (int64, int32) {
	t := c.now()
	return t.Unix(), int32(t.Nanosecond())
}

var start = time.Now()

// nanotime is monotonic, as WASI promises (and Go's runtime in a module
// relies on): a frozen clock earlier than a reading already given stays at
// that reading.
func (c *clock) nanotime() int64 {
	v := c.now().Sub(start).Nanoseconds()
	if last := c.last.Load(); v < last {
		return last
	}
	c.last.Store(v)
	return v
}

type planTimeKey struct{}

// WithPlanTime marks ctx as belonging to a search that started at t: the
// modules' clocks read t during its planning calls.
func WithPlanTime(ctx context.Context, t time.Time) context.Context {
	return context.WithValue(ctx, planTimeKey{}, t)
}

func planTime(ctx context.Context) time.Time {
	if t, ok := ctx.Value(planTimeKey{}).(time.Time); ok {
		return t
	}
	return time.Now()
}
