package runtime_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/internal/testbound"
	"github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/runtime/internal/wasmtest"
)

// count is how many events of kind the recorder holds.
func (r *recorder) count(kind runtime.EventKind) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// A target one part of which no module can reach: the device reaches the
// rest, says what it left out and why once (plan.partial), is not
// converged, and reaches the rest when a module that can is installed.
func TestPartialPlanReachesTheRest(t *testing.T) {
	r := startHostile(t, wasmtest.Assemble(t, wasmtest.Module{}.Text()))
	if err := r.a.SetTarget(1, json.RawMessage(`{"relays":{"heater":true},"fixed":{"a":true}}`)); err != nil {
		t.Fatal(err)
	}
	const why = "/fixed/a: is absent, target true: no job binds this path or a parent of it"
	r.expect(t, runtime.EventPlanPartial, why)
	testbound.WaitFor(t, "the reachable part", func() bool { return level(r.lines, "GPIO17") == gpio.High })
	testbound.WaitFor(t, "a status naming the unreached part", func() bool {
		s := r.a.Status()
		return s.Phase == runtime.PhaseFailed && slices.Equal(s.Unreached, []string{"/fixed/a"}) && strings.Contains(s.Error, why)
	})
	if s := r.a.Status(); s.Converged {
		t.Fatalf("converged with /fixed/a unreached: %+v", s)
	}

	// It retries with backoff (50 ms, doubling to 500 ms); the evil
	// module's sensor steps the loop every 50 ms, so 40 more steps take
	// at least 2 s: several retries, each the same partial plan with
	// nothing to run, and none says so again.
	n := r.a.Steps()
	testbound.WaitFor(t, "40 more steps", func() bool { return r.a.Steps() > n+40 })
	if p, f := r.rep.count(runtime.EventPlanPartial), r.rep.count(runtime.EventPlanFailed); p != 1 || f != 0 {
		t.Fatalf("%d plan.partial and %d plan.failed events for one unreachable part retried; want 1 and 0", p, f)
	}
	if s := r.a.Status(); !slices.Equal(s.Unreached, []string{"/fixed/a"}) || s.Converged {
		t.Fatalf("status after the retries: %+v", s)
	}

	// A release that binds /fixed too arrives: the device reaches it.
	man := strings.Replace(wasmtest.Manifest, `"jobs":[`, `"jobs":[{"name":"fix","path":"/fixed/:name","op":"any"},`, 1)
	fixed := wasmtest.Assemble(t, wasmtest.Module{Manifest: strings.Replace(man, `"1.0.0"`, `"2.0.0"`, 1)}.Text())
	if err := r.a.InstallModule(t.Context(), "evil", fixed); err != nil {
		t.Fatal(err)
	}
	testbound.WaitFor(t, "convergence with the fix", func() bool { return r.a.Status().Converged })
	if s := r.a.Status(); len(s.Unreached) != 0 || s.Error != "" {
		t.Fatalf("converged status still says %q, %q", s.Unreached, s.Error)
	}
	if _, ok := r.rep.find(runtime.EventTaskDone, "/fixed/a"); !ok {
		t.Fatal("no task.done for /fixed/a")
	}
}

// With AllOrNothing, the same target runs nothing: plan.failed says why.
func TestAllOrNothingRunsNothing(t *testing.T) {
	r := startHostile(t, wasmtest.Assemble(t, wasmtest.Module{}.Text()), func(o *runtime.Options) { o.AllOrNothing = true })
	if err := r.a.SetTarget(1, json.RawMessage(`{"relays":{"heater":true},"fixed":{"a":true}}`)); err != nil {
		t.Fatal(err)
	}
	r.expect(t, runtime.EventPlanFailed, "/fixed/a: is absent, target true: no job binds this path or a parent of it")
	testbound.WaitFor(t, "a failed status", func() bool { return r.a.Status().Phase == runtime.PhaseFailed })
	if n := r.lines.Writes("GPIO17"); n != 0 || r.rep.count(runtime.EventPlanPartial) != 0 {
		t.Fatalf("GPIO17 written %d times, %d plan.partial events: all or nothing runs nothing", n, r.rep.count(runtime.EventPlanPartial))
	}
	if s := r.a.Status(); len(s.Unreached) != 0 {
		t.Fatalf("status unreached %q: no partial plan was made", s.Unreached)
	}
}

// A relay the module has no line for cannot be switched on: the device
// switches the one it can, and says why the other is left out, in the
// planner's words.
func TestPartialPlanSaysWhy(t *testing.T) {
	r := newRig(t)
	rep := &recorder{}
	a, _ := r.start(t, rep, true)
	if err := a.SetTarget(1, json.RawMessage(`{"relays":{"fan":true,"pump":true}}`)); err != nil {
		t.Fatal(err)
	}
	testbound.WaitFor(t, "a plan.partial naming the pump and why", func() bool {
		_, ok := rep.find(runtime.EventPlanPartial, "/relays/pump: is absent, target true\n    relay.set: condition does not hold")
		return ok
	})
	testbound.WaitFor(t, "the fan on", func() bool { return level(r.gpio, "GPIO27") == gpio.High })
	testbound.WaitFor(t, "a status naming the pump", func() bool {
		s := a.Status()
		return !s.Converged && slices.Equal(s.Unreached, []string{"/relays/pump"}) && strings.Contains(s.Error, "relay.set: condition does not hold")
	})
}
