package plan

import (
	"slices"
	"strings"

	"github.com/tern-iot/tern/runtime/state"
	"github.com/tern-iot/tern/sdk/abi"
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

// hope is what a partial search needs to find hopeless places.
type hope struct {
	initial  any          // the state the search started from
	onlyHere map[int]bool // by place: every job that could change it binds it
	found    bool         // a dead end had hopeless places: the search stops
}

// hopeless lists the unmet leaves at a dead end that no plan can meet,
// whatever the search chose before (Find asks only where no job is a
// method): a leaf
//   - that only its own jobs can change (no job binds a parent of it or a
//     place inside it, and the domain has no method, whose steps could
//     name any path with any target),
//   - still at its value in the state the search started from (no task
//     of the plan so far changed it),
//   - whose jobs each failed here by their condition or their operation,
//     with answers that read no other path.
//
// Such a leaf's jobs get the same question at every state the search can
// reach, and say no to it: backtracking would try every combination of
// the other parts (a search of 20 independent counters beside one that
// cannot count down visits 3^20 states) to learn nothing. The partial
// search stops there and drops them.
func (s *search) hopeless(tried map[string][]Attempt) []Stuck {
	var out []Stuck
	for _, i := range s.g.unmetLeaves() {
		p := &s.g.places[i]
		a := tried[p.path]
		if len(a) == 0 || !s.onlyHere(i) {
			continue
		}
		cur, present := state.Get(s.w.doc, p.ptr)
		was, wasPresent := state.Get(s.hope.initial, p.ptr)
		if present != wasPresent || present && !state.Equal(cur, was) {
			continue
		}
		if !slices.ContainsFunc(a, func(at Attempt) bool {
			return at.Why != "condition does not hold" && !strings.HasPrefix(at.Why, "binds ")
		}) &&
			s.readNothingElse(p, present, cur) {
			st := Stuck{Path: p.path, Target: string(p.raw), At: p.path, Tried: a}
			if present {
				st.Current = string(state.Canonical(cur))
			}
			out = append(out, st)
		}
	}
	return out
}

// onlyHere reports whether every job whose pattern overlaps place i binds
// exactly its path.
func (s *search) onlyHere(i int) bool {
	if v, ok := s.hope.onlyHere[i]; ok {
		return v
	}
	ptr := s.g.places[i].ptr
	v := !slices.ContainsFunc(s.jobs, func(j *Job) bool {
		if !j.Pattern.Overlaps(ptr) {
			return false
		}
		_, ok := j.Pattern.Match(ptr)
		return !ok
	})
	s.hope.onlyHere[i] = v
	return v
}

// readNothingElse reports whether the answers of place p's jobs for its
// op read no other path than p's (the search remembers them: asking again
// costs no call).
func (s *search) readNothingElse(p *place, present bool, cur any) bool {
	o := Op(present, p.raw)
	for _, c := range p.cands {
		if !c.job.Spec.Op.Matches(o) || c.job.declarative() {
			continue
		}
		call := abi.Call{Job: c.job.Spec.Name, Path: p.path, Params: c.params, Target: p.raw}
		if present {
			call.Current = state.Canonical(cur)
		}
		if r, reads, err := s.try(c.job, call); err != nil || r.OK || len(reads) > 0 {
			return false
		}
	}
	return true
}
