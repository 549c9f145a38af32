package runtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/internal/testbound"
	"github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/runtime/layer"
	"github.com/tern-iot/tern/runtime/plan"
)

// A preview plans a candidate from the live state and changes nothing: no
// line written, no event, the target held unchanged; it says converged,
// the plan, or why there is none (no plan; no module for a path).
func TestPreview(t *testing.T) {
	r := newRig(t)
	rep := &recorder{}
	a, stop := r.start(t, rep, true)
	defer stop()
	if err := a.SetTarget(3, json.RawMessage(`{"relays":{"heater":true}}`)); err != nil {
		t.Fatal(err)
	}
	testbound.WaitFor(t, "convergence", func() bool { return a.Status().Converged })
	rep.mu.Lock()
	events := len(rep.events)
	rep.mu.Unlock()
	writes := [3]int{r.gpio.Writes("GPIO17"), r.gpio.Writes("GPIO22"), r.gpio.Writes("GPIO27")}

	ctx := t.Context()
	p, err := a.Preview(ctx, json.RawMessage(`{"relays":{"heater":true}}`))
	if err != nil || !p.Converged || p.Plan != nil || p.Err != nil {
		t.Errorf("preview of the held target: %+v, %v; want converged", p, err)
	}
	p, err = a.Preview(ctx, json.RawMessage(`{"relays":{"heater":false,"fan":true}}`))
	if err != nil || p.Plan == nil || len(p.Plan.Tasks) != 2 || p.Converged {
		t.Fatalf("preview of a change: %+v, %v; want a plan of 2 tasks", p, err)
	}
	for _, task := range p.Plan.Tasks {
		if task.Job.Module != "relay" || !strings.HasPrefix(task.Path.String(), "/relays/") {
			t.Errorf("a task: %v", task)
		}
	}
	// A relay the module's configuration does not name has no plan.
	p, err = a.Preview(ctx, json.RawMessage(`{"relays":{"pump":true}}`))
	if err != nil || p.Plan != nil || !errors.Is(p.Err, plan.ErrNoPlan) || !strings.Contains(p.Err.Error(), "/relays/pump") {
		t.Errorf("preview of an unconfigured relay: %+v, %v; want no plan naming /relays/pump", p, err)
	}
	p, err = a.Preview(ctx, json.RawMessage(`{"valves":{"v1":"open"}}`))
	if err != nil || !errors.Is(p.Err, runtime.ErrUnhandled) || !strings.Contains(p.Err.Error(), "/valves/v1") {
		t.Errorf("preview of a path no module handles: %+v, %v", p, err)
	}
	if _, err := a.Preview(ctx, json.RawMessage(`[1]`)); !errors.Is(err, runtime.ErrBadTarget) {
		t.Errorf("preview of an array: %v", err)
	}

	if got := [3]int{r.gpio.Writes("GPIO17"), r.gpio.Writes("GPIO22"), r.gpio.Writes("GPIO27")}; got != writes {
		t.Errorf("lines written during previews: %v before, %v after", writes, got)
	}
	if level(r.gpio, "GPIO17") != gpio.High || level(r.gpio, "GPIO27") != gpio.Low {
		t.Error("the relays moved during previews")
	}
	if _, v := a.Target(); v != 3 {
		t.Errorf("target version %d after previews, want 3", v)
	}
	rep.mu.Lock()
	for _, e := range rep.events[events:] {
		if e.Kind != runtime.EventConverged { // none expected; a drift or plan would show here
			t.Errorf("an event during previews: %+v", e)
		}
	}
	rep.mu.Unlock()
}

// Previews from many goroutines while the agent converges on new targets
// (go test -race): each gets an answer, and the agent still converges.
func TestPreviewHammer(t *testing.T) {
	r := newRig(t)
	a, stop := r.start(t, nil, true)
	defer stop()
	ctx := t.Context()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 20 {
				doc := `{"relays":{"fan":true}}`
				if (g+i)%2 == 0 {
					doc = `{"relays":{"fan":false,"heater":true}}`
				}
				p, err := a.Preview(ctx, json.RawMessage(doc))
				if err != nil || (p.Plan == nil && !p.Converged) {
					t.Errorf("preview %d of goroutine %d: %+v, %v", i, g, p, err)
					return
				}
			}
		})
	}
	for v := uint64(1); v <= 5; v++ {
		on := v%2 == 0
		doc, _ := json.Marshal(map[string]any{"relays": map[string]bool{"heater": on}})
		if err := a.SetTarget(v, doc); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	testbound.WaitFor(t, "convergence on version 5 beside the previews", func() bool {
		s := a.Status()
		return s.Converged && s.TargetVersion == 5
	})
	if level(r.gpio, "GPIO17") != gpio.Low {
		t.Error("the heater is on; version 5 has it off")
	}
}

// A preview waits for the loop; one that cannot get it in time says so.
func TestPreviewWhileNotRunning(t *testing.T) {
	r := newRig(t)
	a, stop := r.start(t, nil, true)
	stop() // the loop has ended
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := a.Preview(ctx, json.RawMessage(`{}`)); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "busy") {
		t.Errorf("preview with no loop: %v", err)
	}
}

// A preview lays the layers the agent holds over the candidate, those
// active now: what the device would pursue were the candidate pushed.
func TestPreviewLaysTheLayers(t *testing.T) {
	r := newRig(t)
	a, stop := r.start(t, &recorder{}, true)
	defer stop()
	ls, err := layer.Parse([]byte(`[{"name":"always","when":{"facts":{}},"target":{"relays":{"fan":true}}}]`), "group/g")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetLayeredTarget(3, json.RawMessage(`{"relays":{"heater":true}}`), ls, ""); err != nil {
		t.Fatal(err)
	}
	testbound.WaitFor(t, "convergence", func() bool { return a.Status().Converged })
	// The candidate turns the fan off; the layer, active now, keeps it on.
	p, err := a.Preview(t.Context(), json.RawMessage(`{"relays":{"heater":false,"fan":false}}`))
	if err != nil || p.Plan == nil {
		t.Fatalf("preview: %+v, %v", p, err)
	}
	var paths []string
	for _, task := range p.Plan.Tasks {
		paths = append(paths, task.Path.String())
	}
	if len(paths) != 1 || paths[0] != "/relays/heater" {
		t.Errorf("the plan touches %v; want /relays/heater only: the layer keeps the fan on", paths)
	}
}
