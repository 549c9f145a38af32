package runtime

import (
	"testing"
	"time"

	"github.com/tern-iot/tern/runtime/layer"
)

// The loop's timer is set for the next edge of a window of a layer that
// can apply here: an agent with nothing to sense wakes when a window
// opens or closes, not at its next heartbeat.
func TestLayersWait(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 2, 21, 59, 0, 0, berlin)
	a := &Agent{opts: Options{Clock: func() time.Time { return now }, Facts: layer.Facts{"board": {"rpi4"}}}.withDefaults()}
	a.log = a.opts.Logger
	if _, ok := a.layersWait(); ok {
		t.Fatal("a timer with no target")
	}
	ls, err := layer.Parse([]byte(`[
		{"name":"night","when":{"window":{"from":"22:00","to":"06:00","zone":"Europe/Berlin"}},"target":{"a":1}},
		{"name":"pi5-noon","when":{"window":{"from":"12:00","to":"13:00","zone":"Europe/Berlin"},"facts":{"board":"rpi5"}},"target":{"a":2}}]`), "device/d")
	if err != nil {
		t.Fatal(err)
	}
	a.setLayered(map[string]any{}, ls)
	for _, step := range []struct {
		at   time.Time
		want time.Duration
	}{
		{now, time.Minute},
		{time.Date(2026, 3, 2, 22, 0, 0, 0, berlin), 8 * time.Hour}, // until it closes; the pi5 layer never applies here
		{time.Date(2026, 3, 3, 5, 59, 59, 995e6, berlin), 10 * time.Millisecond},
		// The clock changes on 2026-03-29: the night is an hour shorter.
		{time.Date(2026, 3, 28, 22, 0, 0, 0, berlin), 7 * time.Hour},
	} {
		now = step.at
		a.layersTick()
		if got, ok := a.layersWait(); !ok || got != step.want {
			t.Errorf("at %v: wait %v (%v), want %v", step.at, got, ok, step.want)
		}
	}
}
