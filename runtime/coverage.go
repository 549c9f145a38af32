package runtime

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/tern-iot/tern/runtime/state"
)

// maxUnhandled bounds the paths a status lists as unhandled: a target may
// name tens of thousands of keys, and the report must stay small.
const maxUnhandled = 16

// coverage is what the agent knows about the target's paths that no loaded
// module senses or binds: their values come only from the store (or from
// nowhere), so the agent cannot say they hold, and it is not converged
// while there are any.
type coverage struct {
	version uint64   // target version it was computed for
	gen     uint64   // module set generation it was computed for
	paths   []string // unhandled paths, at most maxUnhandled
	more    int      // unhandled paths beyond paths
	told    bool     // the plan.failed event for it was sent
}

// unhandled returns the paths of target no job of mods binds and no sensor
// of mods reports: the leaves of target (and empty objects) that no job
// pattern or sensor path overlaps. A subtree a module covers is not
// walked further.
func unhandled(mods []*module, target any) (paths []string, more int) {
	state.Walk(target, func(p state.Pointer, v any) bool {
		if len(p) == 0 {
			return true
		}
		for _, mod := range mods {
			for _, j := range mod.jobs {
				if j.Pattern.Overlaps(p) && j.Pattern.Len() <= len(p) {
					return false // bound here or above: the job owns the subtree
				}
			}
			for _, s := range mod.sensors {
				if p.HasPrefix(s.path) {
					return false
				}
			}
		}
		if m, ok := v.(map[string]any); ok && len(m) > 0 {
			return true // a job or sensor deeper down may cover each key
		}
		if coveredBelow(mods, p) {
			return false
		}
		if len(paths) < maxUnhandled {
			paths = append(paths, p.String())
		} else {
			more++
		}
		return false
	})
	return paths, more
}

// coveredBelow reports whether a job or sensor binds a path under p (p is
// a leaf or an empty object of the target: a job under it may create it).
func coveredBelow(mods []*module, p state.Pointer) bool {
	for _, mod := range mods {
		for _, j := range mod.jobs {
			if j.Pattern.Overlaps(p) {
				return true
			}
		}
		for _, s := range mod.sensors {
			if s.path.HasPrefix(p) {
				return true
			}
		}
	}
	return false
}

// updateCoverage recomputes the unhandled paths when the target or the
// module set changed since the last time. Call with a.mu held, on the
// loop's goroutine.
func (a *Agent) updateCoverage() {
	if a.cover.version == a.version && a.cover.gen == a.modsGen && a.cover.gen != 0 {
		return
	}
	paths, more := unhandled(a.set.mods, a.target)
	a.cover = coverage{version: a.version, gen: a.modsGen, paths: paths, more: more}
}

// unhandledError says why the agent cannot call the target reached: which
// paths no module handles, and which configured modules did not load.
func (a *Agent) unhandledError() string {
	var b strings.Builder
	fmt.Fprintf(&b, "not converged: no loaded module senses or sets %s", strings.Join(a.cover.paths, ", "))
	if a.cover.more > 0 {
		fmt.Fprintf(&b, " and %d more paths", a.cover.more)
	}
	if len(a.missing) > 0 {
		b.WriteString("; configured modules not loaded: ")
		for i, name := range slices.Sorted(maps.Keys(a.missing)) {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s (%s)", name, a.missing[name])
		}
	} else {
		b.WriteString("; release a module that handles them, or remove them from the target")
	}
	return b.String()
}
