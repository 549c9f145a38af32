package state

import (
	"slices"
)

// Satisfies reports whether state meets the partial target. Objects in the
// target are compared key by key, recursively, and keys the target does
// not name are ignored. Every other target value is a leaf: a non-null
// leaf must be present in state and Equal to it (arrays are compared whole,
// never element by element), and a null leaf requires the key to be absent
// from state (a key present with the value null is not absent).
//
// A target object whose state counterpart is missing or not an object is
// met by its null leaves and failed by its non-null ones; an empty target
// object names no leaf and is always met. A whole-document target of null
// is met only by a null state.
func Satisfies(state, target any) bool {
	if target == nil {
		return state == nil
	}
	return satisfies(state, true, target)
}

// satisfies checks target against state; present says whether state exists.
func satisfies(state any, present bool, target any) bool {
	tm, ok := target.(map[string]any)
	if !ok {
		return present && Equal(state, target)
	}
	sm, _ := state.(map[string]any)
	for k, tv := range tm {
		sv, ok := sm[k]
		if tv == nil {
			if ok {
				return false
			}
			continue
		}
		if !satisfies(sv, ok, tv) {
			return false
		}
	}
	return true
}

// Unsatisfied lists the deepest places where state does not meet target:
// the target's leaves (see Satisfies) that are not met, in the order Walk
// visits them (keys sorted, depth first), so the same inputs always give
// the same list. It is empty exactly when Satisfies(state, target) holds;
// a null whole-document target that is not met is reported as the whole
// document (the empty Pointer).
func Unsatisfied(state, target any) []Pointer {
	if target == nil {
		if state == nil {
			return nil
		}
		return []Pointer{{}}
	}
	var out []Pointer
	var path Pointer
	unsatisfied(state, true, target, &path, &out)
	return out
}

func unsatisfied(state any, present bool, target any, path *Pointer, out *[]Pointer) {
	tm, ok := target.(map[string]any)
	if !ok {
		if !present || !Equal(state, target) {
			*out = append(*out, path.Append())
		}
		return
	}
	sm, _ := state.(map[string]any)
	var buf [16]string
	for _, k := range appendSortedKeys(buf[:0], tm) {
		tv := tm[k]
		sv, ok := sm[k]
		*path = append(*path, k)
		if tv == nil {
			if ok {
				*out = append(*out, path.Append())
			}
		} else {
			unsatisfied(sv, ok, tv, path, out)
		}
		*path = (*path)[:len(*path)-1]
	}
}

// Walk calls fn for every place in target, parents before children, with
// the place's pointer and the target's value there: first the whole
// document, then, for an object, each key in sorted order, depth first.
// Objects are descended and every other value is a leaf (arrays are not
// entered, matching how Satisfies reads a target). When fn returns false
// Walk does not descend below that place. fn may keep the pointer.
func Walk(target any, fn func(p Pointer, v any) bool) {
	walk(Pointer{}, target, fn)
}

func walk(p Pointer, v any, fn func(Pointer, any) bool) {
	if !fn(p, v) {
		return
	}
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	var buf [16]string
	for _, k := range appendSortedKeys(buf[:0], m) {
		walk(p.Append(k), m[k], fn)
	}
}

// appendSortedKeys appends m's keys to keys, sorted. Callers pass a small
// stack buffer so that typical objects cost no allocation.
func appendSortedKeys(keys []string, m map[string]any) []string {
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
