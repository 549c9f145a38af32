package fleet

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/tern-iot/tern/runtime/state"
)

// A device pursues one target, combined from the targets retained for its
// groups and for itself (docs/mqtt.md, "Groups"):
//
//   - Precedence: the groups in the order the device's configuration lists
//     them, each overriding the ones before, then the device's own target
//     over all of them ([Scopes]).
//   - Overriding is per key, recursively; a null deletes, whoever says it
//     last ([CombineTargets]).
//   - The combined version is the sum of the sources' versions, so it grows
//     whenever any source does ([CombinedVersion]). Each source's version is
//     at most MaxVersion (2^53−1), so the sum is exact in a uint64 for up to
//     2047 groups; a sum that would not fit is refused, never wrapped. With
//     tern's default versions (the time in milliseconds, about 2^41) it stays
//     below 2^53, where JSON doubles are exact, for up to 2048 sources (until
//     the year 2109).
//
// ternd combines with these; an operator's tool that wants to know which
// version a device should reach computes it the same way, from the targets
// [Operator.RetainedTargets] reads (tern watch --pushed does).

// Scopes returns the scopes whose targets a device combines, lowest
// precedence first: its groups as listed, then the device itself.
func Scopes(device string, groups []string) []string {
	scopes := make([]string, 0, len(groups)+1)
	for _, g := range groups {
		scopes = append(scopes, GroupScope(g))
	}
	return append(scopes, DeviceScope(device))
}

// CombineTargets lays the targets over each other, lowest precedence
// first, and returns the combined document, canonical (sorted keys, no
// spaces). A nil target is a source without one.
func CombineTargets(targets ...json.RawMessage) (json.RawMessage, error) {
	var combined any = map[string]any{}
	for i, t := range targets {
		if t == nil {
			continue
		}
		v, err := state.Parse(t)
		if err != nil {
			return nil, fmt.Errorf("fleet: target %d of %d: %w", i+1, len(targets), err)
		}
		combined = state.Overlay(combined, v)
	}
	return state.Canonical(combined), nil
}

// CombinedVersion is the sum of the sources' versions. It fails, rather
// than wrap, when the sum does not fit in a uint64: only versions held
// from before MaxVersion, or more than 2047 groups, get there.
func CombinedVersion(versions ...uint64) (uint64, error) {
	var sum uint64
	for _, v := range versions {
		if sum+v < sum {
			return 0, fmt.Errorf("the versions of this device's targets add up to more than %d, so no combined version grows past them; take the sources with runaway versions back with tern push --replaces HELD --version LOWER (at most %d each)",
				uint64(math.MaxUint64), MaxVersion)
		}
		sum += v
	}
	return sum, nil
}
