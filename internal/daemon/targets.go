package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/runtime/state"
	"github.com/tern-iot/tern/runtime/store"
)

// combiner turns the targets of a device's groups and of the device itself
// into the one target the agent pursues, as package fleet defines the
// combination (fleet.Scopes, fleet.CombineTargets, fleet.CombinedVersion),
// and decides which envelopes it accepts.
//
// Each source's version is kept in the store, so a replayed or older
// envelope of one source is refused even after a restart.
type combiner struct {
	store   store.Store
	trust   signing.Trust
	order   []string // scopes, lowest precedence first
	sources map[string]source
}

type source struct {
	Version uint64          `json:"version"`
	Target  json.RawMessage `json:"target"`
	// Retired, when not 0, is the lowest version a rebase took this
	// source back from: versions from it up are refused, so the runaway
	// envelope (still validly signed) cannot be replayed.
	Retired uint64 `json:"retired,omitempty"`
}

var keySources = []byte("fleet/sources")

func newCombiner(st store.Store, trust signing.Trust, device string, groups []string) (*combiner, error) {
	c := &combiner{store: st, trust: trust, sources: map[string]source{}, order: fleet.Scopes(device, groups)}
	b, err := st.Get(keySources)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("ternd: reading target sources: %w", err)
	default:
		if err := json.Unmarshal(b, &c.sources); err != nil {
			return nil, fmt.Errorf("ternd: stored target sources are corrupt (%v): remove the data directory's store to start over", err)
		}
	}
	return c, nil
}

// offer takes an envelope from the fleet. It returns the combined target
// when it changed, or an error saying why the envelope was refused.
// rebased is true when a rebase (TargetEnvelope.Replaces) was applied:
// the combined version may then be lower than the one the agent holds.
func (c *combiner) offer(st fleet.ScopedTarget) (version uint64, doc json.RawMessage, changed, rebased bool, err error) {
	version, doc, changed, err = c.take(st)
	return version, doc, changed, changed && st.Replaces != 0, err
}

func (c *combiner) take(st fleet.ScopedTarget) (version uint64, doc json.RawMessage, changed bool, err error) {
	held, fresh, err := c.admit(st)
	if err != nil || !fresh {
		return 0, nil, false, err
	}
	c.sources[st.Scope] = source{Version: st.Version, Target: st.Target, Retired: held.Retired}
	b, err := json.Marshal(c.sources)
	if err == nil {
		err = c.store.Put(keySources, b)
	}
	if err != nil {
		return 0, nil, false, fmt.Errorf("storing target sources: %w", err)
	}
	targets := make([]json.RawMessage, len(c.order))
	for i, s := range c.order {
		targets[i] = c.sources[s].Target
	}
	if doc, err = fleet.CombineTargets(targets...); err != nil {
		return 0, nil, false, err
	}
	if version, err = c.combinedVersion("", 0); err != nil {
		return 0, nil, false, err
	}
	return version, doc, true, nil
}

// admit decides whether the envelope would be taken, without taking it:
// fresh is false for a redelivery of what is held, err says why it is
// refused. held is the source it would replace (its Retired as a rebase
// leaves it).
func (c *combiner) admit(st fleet.ScopedTarget) (held source, fresh bool, err error) {
	known := false
	for _, s := range c.order {
		known = known || s == st.Scope
	}
	if !known {
		return held, false, fmt.Errorf("target for %s, which is not this device nor one of its groups", st.Scope)
	}
	if len(c.trust) > 0 {
		if err := st.Verify(st.Scope, c.trust); err != nil {
			return held, false, fmt.Errorf("%s target version %d refused: %w", st.Scope, st.Version, err)
		}
	}
	held = c.sources[st.Scope]
	if st.Replaces != 0 {
		switch {
		case st.Version == held.Version && sameDocument(st.Target, held.Target):
			return held, false, nil // redelivered after it was applied
		case st.Replaces != held.Version:
			return held, false, fmt.Errorf("%s target version %d refused: it replaces version %d, but this device holds version %d; a rebase applies only to a device that holds the version it replaces (tern push --replaces %d, or a plain push above %d)",
				st.Scope, st.Version, st.Replaces, held.Version, held.Version, held.Version)
		}
		held.Version = 0 // the rebase may go below it
		held.Retired = min(st.Replaces, cmpZero(held.Retired))
	}
	switch {
	case held.Retired != 0 && st.Version >= held.Retired:
		return held, false, fmt.Errorf("%s target version %d refused: versions from %d up were retired when an operator took this device back from version %d (tern push --replaces); push a version below %d",
			st.Scope, st.Version, held.Retired, held.Retired, held.Retired)
	case st.Version < held.Version && held.Version > fleet.MaxVersion:
		return held, false, fmt.Errorf("%s target version %d refused: the version held, %d, was accepted before versions had a ceiling (2^53-1) and no version can follow it; take the device back with tern push --replaces %d --version LOWER",
			st.Scope, st.Version, held.Version, held.Version)
	case st.Version < held.Version:
		return held, false, fmt.Errorf("%s target version %d refused: older than the version %d held (a replay, or a push with a lower --version); push a version above %d",
			st.Scope, st.Version, held.Version, held.Version)
	case st.Version == held.Version && sameDocument(st.Target, held.Target):
		return held, false, nil // redelivered: the retained message after a reconnect
	case st.Version == held.Version:
		return held, false, fmt.Errorf("%s target version %d refused: version %d is held with a different target; a version names one target, so push the change as a version above %d",
			st.Scope, st.Version, held.Version, held.Version)
	}
	if _, err := c.combinedVersion(st.Scope, st.Version); err != nil {
		return held, false, fmt.Errorf("%s target version %d refused: %w", st.Scope, st.Version, err)
	}
	return held, true, nil
}

// combinedVersion is fleet.CombinedVersion of the sources' versions, with
// scope's replaced by version (scope "": none replaced).
func (c *combiner) combinedVersion(scope string, version uint64) (uint64, error) {
	versions := make([]uint64, len(c.order))
	for i, s := range c.order {
		versions[i] = c.sources[s].Version
		if s == scope {
			versions[i] = version
		}
	}
	return fleet.CombinedVersion(versions...)
}

// cmpZero reads 0 as "none": the largest uint64, so min ignores it.
func cmpZero(v uint64) uint64 {
	if v == 0 {
		return math.MaxUint64
	}
	return v
}

// sameDocument reports whether two JSON documents are equal once
// canonical (key order and spacing do not count).
func sameDocument(a, b json.RawMessage) bool {
	va, errA := state.Parse(a)
	vb, errB := state.Parse(b)
	return errA == nil && errB == nil && string(state.Canonical(va)) == string(state.Canonical(vb))
}
