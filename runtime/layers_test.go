package runtime_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/internal/testbound"
	"github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/runtime/layer"
)

// The agent evaluates its target's layers by its own clock: when the
// clock enters a layer's window it re-plans, naming the layer, and
// converges to the layer's values; when it leaves, it converges back.
// The status names the active layers, and layers that name a fact the
// device does not know. The layers are stored with the target: after a
// restart they apply without the fleet.
func TestLayersFollowTheClock(t *testing.T) {
	r := newRig(t)
	rep := &recorder{}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{}
	clock.set(time.Date(2026, 3, 2, 12, 0, 0, 0, berlin))
	facts := layer.Facts{layer.FactDevice: {"pi-001"}, layer.FactBoard: {"rpi4"}, layer.FactGroup: {"north"}}
	edit := func(o *runtime.Options) { o.Clock, o.Facts = clock.now, facts }
	a, stop := r.startWith(t, rep, edit)

	group, err := layer.Parse([]byte(`[{"name":"night","when":{"window":{"from":"22:00","to":"06:00","zone":"Europe/Berlin"}},"target":{"relays":{"heater":false}}}]`), "group/north")
	if err != nil {
		t.Fatal(err)
	}
	device, err := layer.Parse([]byte(`[
		{"name":"pi4-fan","when":{"facts":{"board":"rpi4","group":"north"}},"target":{"relays":{"fan":true}}},
		{"name":"pi5","when":{"facts":{"board":"rpi5"}},"target":{"relays":{"fan":false}}},
		{"name":"red","when":{"facts":{"colour":"red"}},"target":{"relays":{"fan":false}}}]`), "device/pi-001")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetLayeredTarget(1, json.RawMessage(`{"relays":{"heater":true,"fan":false}}`), append(group, device...), ""); err != nil {
		t.Fatal(err)
	}
	converged := func(heater, fan gpio.Level, layers ...string) func() bool {
		return func() bool {
			s := a.Status()
			return s.Converged && level(r.gpio, "GPIO17") == heater && level(r.gpio, "GPIO27") == fan && slices.Equal(s.Layers, layers)
		}
	}
	testbound.WaitFor(t, "noon: the fan layer only", converged(gpio.High, gpio.High, "device/pi-001/pi4-fan"))
	if p := a.Status().LayerProblems; len(p) != 1 || !strings.Contains(p[0], `device/pi-001/red: fact "colour" is not known`) {
		t.Errorf("layer problems %q, want the unknown fact of layer red", p)
	}

	clock.set(time.Date(2026, 3, 2, 22, 0, 1, 0, berlin))
	testbound.WaitFor(t, "night: heater off", converged(gpio.Low, gpio.High, "group/north/night", "device/pi-001/pi4-fan"))
	if _, ok := rep.find(runtime.EventReplan, "layer group/north/night became active"); !ok {
		t.Error("no plan.replan event naming the layer that became active")
	}
	if _, ok := rep.find(runtime.EventDrift, ""); ok {
		t.Error("a layer's change was reported as drift")
	}
	testbound.WaitFor(t, "the state report naming the night layer", func() bool {
		return slices.Equal(rep.lastState().Layers, []string{"group/north/night", "device/pi-001/pi4-fan"})
	})

	clock.set(time.Date(2026, 3, 3, 6, 0, 0, 0, berlin))
	testbound.WaitFor(t, "morning: heater on again", converged(gpio.High, gpio.High, "device/pi-001/pi4-fan"))
	if _, ok := rep.find(runtime.EventReplan, "layer group/north/night became inactive"); !ok {
		t.Error("no plan.replan event naming the layer that became inactive")
	}

	// Offline and restarted in the night: the stored layers apply.
	stop()
	clock.set(time.Date(2026, 3, 3, 23, 0, 0, 0, berlin))
	a, _ = r.startWith(t, &recorder{}, edit)
	testbound.WaitFor(t, "after a restart at night: heater off", converged(gpio.Low, gpio.High, "group/north/night", "device/pi-001/pi4-fan"))
	if _, v := a.Target(); v != 1 {
		t.Errorf("target version %d after the restart, want 1", v)
	}
}

// lastState is the last status published.
func (r *recorder) lastState() runtime.Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.states) == 0 {
		return runtime.Status{}
	}
	return r.states[len(r.states)-1]
}
