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
// into the one target the agent pursues. Precedence: groups in the order the
// configuration lists them, each overriding the ones before, then the
// device's own target over all of them. Overriding is per key, recursively;
// a null deletes, whoever says it last. The combined version is the sum of
// the sources' versions: it grows whenever any source does. Each source's
// version is at most fleet.MaxVersion (2^53−1, the parser refuses more), so
// the sum is at most (1 + groups) × (2^53−1): exact in a uint64 for up to
// 2047 groups; a sum that would not fit is refused, never wrapped. With
// tern's default versions (the time in milliseconds, about 2^41) it stays
// below 2^53, where JSON doubles are exact, for up to 2048 sources
// (until the year 2109).
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
	c := &combiner{store: st, trust: trust, sources: map[string]source{}}
	for _, g := range groups {
		c.order = append(c.order, fleet.GroupScope(g))
	}
	c.order = append(c.order, fleet.DeviceScope(device))
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
	known := false
	for _, s := range c.order {
		known = known || s == st.Scope
	}
	if !known {
		return 0, nil, false, fmt.Errorf("target for %s, which is not this device nor one of its groups", st.Scope)
	}
	if len(c.trust) > 0 {
		if err := st.Verify(st.Scope, c.trust); err != nil {
			return 0, nil, false, fmt.Errorf("%s target version %d refused: %w", st.Scope, st.Version, err)
		}
	}
	held := c.sources[st.Scope]
	if st.Replaces != 0 {
		switch {
		case st.Version == held.Version && sameDocument(st.Target, held.Target):
			return 0, nil, false, nil // redelivered after it was applied
		case st.Replaces != held.Version:
			return 0, nil, false, fmt.Errorf("%s target version %d refused: it replaces version %d, but this device holds version %d; a rebase applies only to a device that holds the version it replaces (tern push --replaces %d, or a plain push above %d)",
				st.Scope, st.Version, st.Replaces, held.Version, held.Version, held.Version)
		}
		held.Version = 0 // the rebase may go below it
		held.Retired = min(st.Replaces, cmpZero(held.Retired))
	}
	switch {
	case held.Retired != 0 && st.Version >= held.Retired:
		return 0, nil, false, fmt.Errorf("%s target version %d refused: versions from %d up were retired when an operator took this device back from version %d (tern push --replaces); push a version below %d",
			st.Scope, st.Version, held.Retired, held.Retired, held.Retired)
	case st.Version < held.Version && held.Version > fleet.MaxVersion:
		return 0, nil, false, fmt.Errorf("%s target version %d refused: the version held, %d, was accepted before versions had a ceiling (2^53-1) and no version can follow it; take the device back with tern push --replaces %d --version LOWER",
			st.Scope, st.Version, held.Version, held.Version)
	case st.Version < held.Version:
		return 0, nil, false, fmt.Errorf("%s target version %d refused: older than the version %d held (a replay, or a push with a lower --version); push a version above %d",
			st.Scope, st.Version, held.Version, held.Version)
	case st.Version == held.Version && sameDocument(st.Target, held.Target):
		return 0, nil, false, nil // redelivered: the retained message after a reconnect
	case st.Version == held.Version:
		return 0, nil, false, fmt.Errorf("%s target version %d refused: version %d is held with a different target; a version names one target, so push the change as a version above %d",
			st.Scope, st.Version, held.Version, held.Version)
	}
	if _, err := c.combinedVersion(st.Scope, st.Version); err != nil {
		return 0, nil, false, fmt.Errorf("%s target version %d refused: %w", st.Scope, st.Version, err)
	}
	c.sources[st.Scope] = source{Version: st.Version, Target: st.Target, Retired: held.Retired}
	b, err := json.Marshal(c.sources)
	if err == nil {
		err = c.store.Put(keySources, b)
	}
	if err != nil {
		return 0, nil, false, fmt.Errorf("storing target sources: %w", err)
	}
	var combined any = map[string]any{}
	for _, s := range c.order {
		src, ok := c.sources[s]
		if !ok {
			continue
		}
		v, err := state.Parse(src.Target)
		if err != nil {
			return 0, nil, false, fmt.Errorf("%s target: %w", s, err)
		}
		combined = overlay(combined, v)
	}
	version, err = c.combinedVersion("", 0)
	if err != nil {
		return 0, nil, false, err
	}
	return version, state.Canonical(combined), true, nil
}

// combinedVersion is the sum of the sources' versions, with scope's
// replaced by version (scope "": none replaced). It fails, rather than
// wrap, when the sum does not fit in a uint64: only versions held from
// before the ceiling, or more than 2047 groups, get there.
func (c *combiner) combinedVersion(scope string, version uint64) (uint64, error) {
	var sum uint64
	for _, s := range c.order {
		v := c.sources[s].Version
		if s == scope {
			v = version
		}
		if sum+v < sum {
			return 0, fmt.Errorf("the versions of this device's targets add up to more than %d, so no combined version grows past them; take the sources with runaway versions back with tern push --replaces HELD --version LOWER (at most %d each)",
				uint64(math.MaxUint64), fleet.MaxVersion)
		}
		sum += v
	}
	return sum, nil
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

// overlay lays top over base: objects key by key, recursively; anything
// else (null included) replaces.
func overlay(base, top any) any {
	tm, ok := top.(map[string]any)
	bm, ok2 := base.(map[string]any)
	if !ok || !ok2 {
		return state.Clone(top)
	}
	out := state.Clone(bm).(map[string]any)
	for k, v := range tm {
		if old, ok := out[k]; ok {
			out[k] = overlay(old, v)
		} else {
			out[k] = state.Clone(v)
		}
	}
	return out
}
