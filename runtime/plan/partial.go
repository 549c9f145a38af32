package plan

import (
	"slices"
	"strings"

	"github.com/tern-iot/tern/runtime/state"
)

// leftOut is what a partial search has given up on: the places it reports
// unreached, and the paths strict mode must leave as they are.
type leftOut struct {
	places []Stuck
	kept   map[string]bool
}

// unbound lists the target's unmet leaves no job can ever change (no
// job's pattern binds them, a parent of them or a place inside them). Those
// leaves are known unreachable before any search, and each would cost a
// full one: a search that cannot meet one leaf explores every combination
// of the others before it gives up. It costs a look at the goal's bits
// for each unmet leaf and its parents; only a leaf none of them binds is
// matched against every job.
func (s *search) unbound() []Stuck {
	var drop []Stuck
	for _, i := range s.g.unmetLeaves() {
		bound := false
		for q := i; q >= 0 && !bound; q = s.g.places[q].parent {
			bound = s.g.bound.has(q)
		}
		p := &s.g.places[i]
		if bound || slices.ContainsFunc(s.jobs, func(j *Job) bool { return j.Pattern.Overlaps(p.ptr) }) {
			continue
		}
		st := Stuck{Path: p.path, Target: string(p.raw)}
		if cur, ok := state.Get(s.w.doc, p.ptr); ok {
			st.Current = string(state.Canonical(cur))
		}
		drop = append(drop, st)
	}
	return drop
}

// drop records places as unreached and returns target without them. A
// place the target names is deleted from it (an object left empty stays:
// an empty target object is always met, and in strict mode still deletes
// what the state has beside the kept paths); every place is kept, so
// strict mode does not delete it either.
func (l *leftOut) drop(target any, places []Stuck) any {
	target = state.Clone(target)
	if l.kept == nil {
		l.kept = map[string]bool{}
	}
	for _, st := range places {
		l.places = append(l.places, st)
		l.kept[st.Path] = true
		ptr, err := state.ParsePointer(st.Path)
		if err != nil || len(ptr) == 0 {
			continue // the search made these paths: cannot happen
		}
		if _, named := state.Get(target, ptr); named {
			target, _ = state.Delete(target, ptr)
		}
	}
	return target
}

// sorted is the unreached places by path, so a plan's report does not
// depend on the round that found each.
func (l *leftOut) sorted() []Stuck {
	out := slices.Clone(l.places)
	slices.SortStableFunc(out, func(a, b Stuck) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// keptAt is the kept path at or above ptr, or "". A later round of a
// partial search refuses a task there: a method that expands into a part
// already given up on would otherwise run a job on it with no target, or
// with one the plan does not try to reach.
func (s *search) keptAt(ptr state.Pointer) string {
	if len(s.kept) == 0 {
		return ""
	}
	for n := len(ptr); n > 0; n-- {
		if k := ptr[:n].String(); s.kept[k] {
			return k
		}
	}
	return ""
}
