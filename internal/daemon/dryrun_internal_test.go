package daemon

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/runtime/plan"
)

// The rate bound: a burst, then one every dryRunEvery, whatever the
// flood; the burst comes back after a quiet spell.
func TestDryRunRateBound(t *testing.T) {
	r := &dryRunner{log: fleettest.Logger(t, "ternd"), tokens: dryRunBurst, last: time.Unix(0, 0)}
	now := time.Unix(0, 0)
	allowed := 0
	for range 100 { // a flood within one instant
		if r.allow(now) {
			allowed++
		}
	}
	if allowed != dryRunBurst {
		t.Errorf("%d of a flood of 100 allowed at once, want the burst, %d", allowed, dryRunBurst)
	}
	if r.allow(now.Add(dryRunEvery / 2)) {
		t.Error("allowed half an interval after the burst")
	}
	if !r.allow(now.Add(dryRunEvery)) {
		t.Error("not allowed an interval after the burst")
	}
	// After a preview that took the loop 10 s, none for 40 s more: a
	// request due after more than dryRunWait is dropped; one due sooner
	// is taken (dryRuns waits for the spell's end before answering).
	later := now.Add(time.Hour)
	r.quiet = later.Add((dryRunDuty - 1) * 10 * time.Second)
	if r.allow(later) || r.allow(later.Add(40*time.Second-dryRunWait-time.Millisecond)) {
		t.Error("allowed while previews are over their share of the loop, for longer than a request waits")
	}
	if !r.allow(later.Add(40*time.Second - dryRunWait)) {
		t.Error("not allowed within dryRunWait of the spell's end")
	}
	allowed = 0
	for range 100 {
		if r.allow(later.Add(time.Hour)) {
			allowed++
		}
	}
	if allowed != dryRunBurst {
		t.Errorf("after an hour: %d allowed, want the burst again, %d", allowed, dryRunBurst)
	}
}

// The candidate is the device's sources with the scope's replaced, read
// from the store the combiner wrote, which it leaves as it was; a version
// the device would refuse as a push is refused.
func TestDryRunCandidate(t *testing.T) {
	st := fleettest.Store(t)
	comb, err := newCombiner(st, nil, "pi-001", []string{"floor"})
	if err != nil {
		t.Fatal(err)
	}
	for _, env := range []fleet.ScopedTarget{
		{Scope: fleet.GroupScope("floor"), TargetEnvelope: fleet.TargetEnvelope{Version: 5, Target: json.RawMessage(`{"relays":{"fan":true,"heater":true}}`)}},
		{Scope: fleet.DeviceScope("pi-001"), TargetEnvelope: fleet.TargetEnvelope{Version: 2, Target: json.RawMessage(`{"relays":{"heater":false}}`)}},
	} {
		if _, _, _, _, err := comb.offer(env); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := st.Get(keySources)
	r := &dryRunner{st: st, order: fleet.Scopes("pi-001", []string{"floor"})}
	ask := func(scope string, version uint64, target string) (string, error) {
		doc, err := r.candidate(fleet.ScopedDryRun{Scope: scope, DryRunRequest: fleet.DryRunRequest{ID: "dr-1", Version: version, Target: json.RawMessage(target)}})
		return string(doc), err
	}
	// The device's own target still overrides the group's candidate.
	if doc, err := ask(fleet.GroupScope("floor"), 6, `{"relays":{"fan":false,"heater":true,"lamp":true}}`); err != nil || doc != `{"relays":{"fan":false,"heater":false,"lamp":true}}` {
		t.Errorf("group candidate: %s, %v", doc, err)
	}
	if doc, err := ask(fleet.DeviceScope("pi-001"), 3, `{"relays":{"heater":true}}`); err != nil || doc != `{"relays":{"fan":true,"heater":true}}` {
		t.Errorf("device candidate: %s, %v", doc, err)
	}
	for _, tc := range []struct {
		scope   string
		version uint64
		target  string
		want    string
	}{
		{fleet.GroupScope("floor"), 4, `{}`, "older than the version 5 held"},
		{fleet.GroupScope("floor"), 5, `{"relays":{}}`, "version 5 is held with a different target"},
		{fleet.GroupScope("attic"), 9, `{}`, "not this device nor one of its groups"},
	} {
		if _, err := ask(tc.scope, tc.version, tc.target); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s version %d: %v, want it to say %q", tc.scope, tc.version, err, tc.want)
		}
	}
	if _, err := ask(fleet.GroupScope("floor"), 5, `{"relays":{"heater":true,"fan":true}}`); err != nil {
		t.Errorf("the version held, the same target: %v", err)
	}
	if after, _ := st.Get(keySources); string(after) != string(before) {
		t.Errorf("the stored sources changed:\n%s\n%s", before, after)
	}
}

// Two devices stuck at the same place with other values give one reason;
// the whole explanation keeps the values.
func TestDryRunReasonHasNoValues(t *testing.T) {
	stuck := func(current string) *plan.NoPlanError {
		return &plan.NoPlanError{After: 1, Places: []plan.Stuck{{Path: "/room/celsius", Current: current, Target: "21", At: "/room/celsius",
			Tried: []plan.Attempt{{Job: "thermostat.heat", Why: "condition does not hold\nmore"}}}}}
	}
	a, b := reasonOf(stuck("17.5")), reasonOf(stuck("19"))
	if a != b || strings.Contains(a, "17.5") || !strings.Contains(a, "/room/celsius to 21 (thermostat.heat: condition does not hold)") {
		t.Errorf("reasons: %q and %q", a, b)
	}
	if !strings.Contains(stuck("17.5").Error(), "17.5") {
		t.Error("the explanation lost the value")
	}
	none := &plan.NoPlanError{Places: []plan.Stuck{{Path: "/x", Target: "1"}}}
	if got := reasonOf(none); got != "no plan: /x to 1 (no job binds it)" {
		t.Errorf("reason with no job: %q", got)
	}
}
