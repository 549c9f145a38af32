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

// unbound drops from target the unmet leaves no job can ever change (no
// job's pattern overlaps them: none binds the leaf, a parent of it or a
// place inside it) and returns what is left. Those leaves are known
// unreachable before any search, and each would cost a full one: a search
// that cannot meet one leaf explores every combination of the others
// before it gives up.
func (l *leftOut) unbound(jobs []*Job, current, target any) any {
	var drop []Stuck
	for _, ptr := range state.Unsatisfied(current, target) {
		if slices.ContainsFunc(jobs, func(j *Job) bool { return j.Pattern.Overlaps(ptr) }) {
			continue
		}
		tv, _ := state.Get(target, ptr)
		st := Stuck{Path: ptr.String(), Target: string(state.Canonical(tv))}
		if cur, ok := state.Get(current, ptr); ok {
			st.Current = string(state.Canonical(cur))
		}
		drop = append(drop, st)
	}
	if len(drop) == 0 {
		return target
	}
	return l.drop(target, drop)
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
