package daemon

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/runtime/store"
	"github.com/tern-iot/tern/runtime/store/backend"
)

func envelope(t *testing.T, scope string, version uint64, target string, sign func(*fleet.TargetEnvelope, string)) fleet.ScopedTarget {
	t.Helper()
	env := fleet.TargetEnvelope{Format: fleet.Format, Version: version, Target: json.RawMessage(target)}
	env.SetTopics(fleet.Topics{Fleet: "demo"})
	if sign != nil {
		sign(&env, scope)
	}
	return fleet.ScopedTarget{Scope: scope, TargetEnvelope: env}
}

// Group targets combine under the device's own: later groups over earlier,
// the device over all; per key, nulls delete.
func TestCombinerPrecedence(t *testing.T) {
	st, c := testCombiner(t)
	steps := []struct {
		in          fleet.ScopedTarget
		wantVersion uint64
		wantDoc     string
	}{
		{envelope(t, "group/all", 5, `{"relays":{"fan":true,"heater":false},"mode":"eco"}`, nil), 5, `{"mode":"eco","relays":{"fan":true,"heater":false}}`},
		{envelope(t, "group/heaters", 2, `{"relays":{"heater":true},"mode":null}`, nil), 7, `{"mode":null,"relays":{"fan":true,"heater":true}}`},
		{envelope(t, "device/pi-001", 10, `{"relays":{"fan":false}}`, nil), 17, `{"mode":null,"relays":{"fan":false,"heater":true}}`},
		{envelope(t, "group/all", 6, `{"relays":{"fan":true}}`, nil), 18, `{"mode":null,"relays":{"fan":false,"heater":true}}`},
	}
	for i, s := range steps {
		v, doc, changed, err := c.take(s.in)
		if err != nil || !changed || v != s.wantVersion || string(doc) != s.wantDoc {
			t.Fatalf("step %d: %d %s %v %v; want %d %s", i, v, doc, changed, err, s.wantVersion, s.wantDoc)
		}
	}
	// Redelivery is quiet (key order does not count); the same version
	// with another target is refused; an older version of one source is
	// refused, also after a restart.
	if _, _, changed, err := c.take(envelope(t, "group/all", 6, `{ "relays": {"fan": true} }`, nil)); changed || err != nil {
		t.Fatalf("redelivery: %v %v", changed, err)
	}
	if _, _, _, err := c.take(envelope(t, "group/all", 6, `{}`, nil)); err == nil || !strings.Contains(err.Error(), "held with a different target") {
		t.Fatalf("version 6 with another target: %v", err)
	}
	c2, _ := newCombiner(st, nil, "pi-001", []string{"all", "heaters"})
	if _, _, _, err := c2.take(envelope(t, "group/heaters", 1, `{}`, nil)); err == nil || !strings.Contains(err.Error(), "older than the version 2 held") {
		t.Fatalf("replayed older group target: %v", err)
	}
	if _, _, _, err := c2.take(envelope(t, "group/other", 9, `{}`, nil)); err == nil || !strings.Contains(err.Error(), "not this device nor one of its groups") {
		t.Fatalf("foreign group: %v", err)
	}
}

// With trusted keys, only targets signed for their own scope by a trusted
// key get through.
func TestCombinerSignatures(t *testing.T) {
	dir := t.TempDir()
	pub, _ := signing.Generate(dir, "ops")
	priv, _ := signing.ReadPrivate(filepath.Join(dir, "ops.key"))
	signing.Generate(dir, "mallory")
	mallory, _ := signing.ReadPrivate(filepath.Join(dir, "mallory.key"))
	st, _ := backend.Open(t.TempDir())
	defer st.Close()
	c, _ := newCombiner(st, signing.NewTrust(pub), "pi-001", []string{"heaters"})
	sign := func(e *fleet.TargetEnvelope, scope string) { e.Sign(scope, priv) }
	forge := func(e *fleet.TargetEnvelope, scope string) { e.Sign(scope, mallory) }
	otherScope := func(e *fleet.TargetEnvelope, _ string) { e.Sign("device/pi-002", priv) }
	tamper := func(e *fleet.TargetEnvelope, scope string) {
		e.Sign(scope, priv)
		e.Target = json.RawMessage(`{"relays":{"heater":false}}`)
	}
	for name, tc := range map[string]struct {
		sign func(*fleet.TargetEnvelope, string)
		want string
	}{
		"unsigned":                  {nil, "push with tern push --key"},
		"unknown key":               {forge, "does not trust"},
		"signed for another device": {otherScope, "was signed for device/pi-002 but arrived on the topic of device/pi-001"},
		"changed after signing":     {tamper, "signature does not match"},
	} {
		_, _, _, err := c.take(envelope(t, "device/pi-001", 3, `{"relays":{"heater":true}}`, tc.sign))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	if _, _, changed, err := c.take(envelope(t, "device/pi-001", 3, `{"relays":{"heater":true}}`, sign)); err != nil || !changed {
		t.Fatalf("signed target: %v %v", changed, err)
	}
}

// Every source may carry the largest version: the combined version is
// their sum, exact, never wrapped; sums that cannot fit (versions held
// from before the ceiling) are refused, and so is any version after a held
// one above the ceiling, each saying what to do.
func TestCombinedVersionCeiling(t *testing.T) {
	_, c := testCombiner(t)
	var want uint64
	for _, scope := range []string{"group/all", "group/heaters", "device/pi-001"} {
		want += fleet.MaxVersion
		v, _, changed, err := c.take(envelope(t, scope, fleet.MaxVersion, `{}`, nil))
		if err != nil || !changed || v != want {
			t.Fatalf("%s at the largest version: combined %d, %v, %v; want %d", scope, v, changed, err, want)
		}
	}
	if want != 3*(1<<53-1) {
		t.Fatalf("combined %d, want 3 × (2^53-1)", want)
	}

	// A store written before versions had a ceiling.
	legacy, _ := backend.Open(t.TempDir())
	defer legacy.Close()
	if err := legacy.Put(keySources, []byte(`{"device/pi-001":{"version":18446744073709551615,"target":{}},"group/all":{"version":1,"target":{}}}`)); err != nil {
		t.Fatal(err)
	}
	c, err := newCombiner(legacy, nil, "pi-001", []string{"all"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in   fleet.ScopedTarget
		want string
	}{
		{envelope(t, "group/all", 2, `{}`, nil), "refused: the versions of this device's targets add up to more than 18446744073709551615"},
		{envelope(t, "device/pi-001", 3, `{}`, nil), "the version held, 18446744073709551615, was accepted before versions had a ceiling (2^53-1) and no version can follow it; take the device back with tern push --replaces 18446744073709551615"},
	} {
		if _, _, changed, err := c.take(tc.in); changed || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s version %d: %v %v; want a refusal saying %q", tc.in.Scope, tc.in.Version, changed, err, tc.want)
		}
	}
}

// A runaway version (the largest, or one held from before the ceiling)
// is taken back by a signed rebase; the runaway envelope, replayed, is
// refused from then on, and pushes below it go on as usual.
func TestRebaseRecoversFromRunawayVersion(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	trust := signing.NewTrust(pub)
	sign := func(env *fleet.TargetEnvelope, scope string) {
		if err := env.Sign(scope, priv); err != nil {
			t.Fatal(err)
		}
	}
	rebase := func(scope string, version, replaces uint64, target string) fleet.ScopedTarget {
		return envelope(t, scope, version, target, func(env *fleet.TargetEnvelope, scope string) {
			env.Replaces = replaces
			sign(env, scope)
		})
	}
	st, err := backend.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, err := newCombiner(st, trust, "pi-001", []string{"all"})
	if err != nil {
		t.Fatal(err)
	}
	runaway := envelope(t, "device/pi-001", fleet.MaxVersion, `{"relays":{"fan":true}}`, sign)
	if _, _, changed, _, err := c.offer(envelope(t, "group/all", 3, `{}`, sign)); !changed || err != nil {
		t.Fatalf("group target: %v %v", changed, err)
	}
	if _, _, changed, _, err := c.offer(runaway); !changed || err != nil {
		t.Fatalf("runaway target: %v %v", changed, err)
	}
	if _, _, _, _, err := c.offer(envelope(t, "device/pi-001", 1800000000000, `{}`, sign)); err == nil || !strings.Contains(err.Error(), "push a version above 9007199254740991") {
		t.Fatalf("push after the runaway: %v", err)
	}

	// A rebase for a version the device does not hold is refused.
	if _, _, _, _, err := c.offer(rebase("device/pi-001", 5, 1234, `{}`)); err == nil || !strings.Contains(err.Error(), "holds version 9007199254740991") {
		t.Fatalf("rebase of a version not held: %v", err)
	}
	// Unsigned, or changed after signing: refused.
	unsigned := envelope(t, "device/pi-001", 5, `{}`, nil)
	unsigned.Replaces = fleet.MaxVersion
	if _, _, _, _, err := c.offer(unsigned); err == nil || !errors.Is(err, signing.ErrUnsigned) {
		t.Fatalf("unsigned rebase: %v", err)
	}
	forged := rebase("device/pi-001", 5, 1234, `{}`)
	forged.Replaces = fleet.MaxVersion
	if _, _, _, _, err := c.offer(forged); err == nil || !errors.Is(err, signing.ErrBadSig) {
		t.Fatalf("rebase with its replaces changed after signing: %v", err)
	}

	v, doc, changed, rebased, err := c.offer(rebase("device/pi-001", 5, fleet.MaxVersion, `{"relays":{"fan":false}}`))
	if err != nil || !changed || !rebased || v != 8 || string(doc) != `{"relays":{"fan":false}}` {
		t.Fatalf("rebase: version %d %s %v %v %v; want 8 (3+5), rebased", v, doc, changed, rebased, err)
	}
	// Redelivered (retained): nothing changes.
	if _, _, changed, _, err := c.offer(rebase("device/pi-001", 5, fleet.MaxVersion, `{"relays":{"fan":false}}`)); changed || err != nil {
		t.Fatalf("redelivered rebase: %v %v", changed, err)
	}
	// The runaway envelope, replayed, is refused for good, across restarts.
	c, err = newCombiner(st, trust, "pi-001", []string{"all"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, _, err := c.offer(runaway); err == nil || !strings.Contains(err.Error(), "versions from 9007199254740991 up were retired") {
		t.Fatalf("replayed runaway: %v", err)
	}
	// Pushes go on above the rebased version.
	if v, _, changed, rebased, err := c.offer(envelope(t, "device/pi-001", 6, `{"relays":{"fan":true}}`, sign)); err != nil || !changed || rebased || v != 9 {
		t.Fatalf("push after the rebase: %d %v %v %v", v, changed, rebased, err)
	}
	if _, _, _, _, err := c.offer(rebase("device/pi-001", 5, fleet.MaxVersion, `{"relays":{"fan":false}}`)); err == nil || !strings.Contains(err.Error(), "holds version 6") {
		t.Fatalf("replayed rebase after a later push: %v", err)
	}
}

// testCombiner is a combiner for pi-001 in groups all and heaters, with no
// trusted keys, on a store of its own that the test closes.
func testCombiner(t *testing.T) (store.Store, *combiner) {
	t.Helper()
	st, err := backend.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, err := newCombiner(st, nil, "pi-001", []string{"all", "heaters"})
	if err != nil {
		t.Fatal(err)
	}
	return st, c
}
