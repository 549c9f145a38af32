package plan

import (
	"math/bits"
	"slices"

	"github.com/tern-iot/tern/runtime/state"
)

// goal is the target as the search sees it: a tree of places (the target's
// objects and leaves, in Walk order), each met or not by the working state.
// When the state changes at a path, only the places on that path are looked
// at again, so a step costs what it changes, not the size of the target.
type goal struct {
	places []place
	root   *gnode
	unmet  bitset // places not met by the state
	bound  bitset // places some job binds
	// unmetKids counts, for an object place, its children that are unmet.
	unmetKids []int
}

type place struct {
	ptr    state.Pointer
	path   string // ptr as text, made once
	target any
	raw    []byte // target encoded once, for calls
	parent int    // -1 for the root
	leaf   bool   // the target here is not an object
	cands  []cand // jobs bound to this path, in try order
	first  int    // the place's own index; places under it follow, up to end
	end    int
}

type cand struct {
	job    *Job
	params map[string]string
}

type gnode struct {
	idx  int
	kids map[string]*gnode
}

func newGoal(target any, jobs []*Job, doc any) *goal {
	g := &goal{}
	var build func(ptr state.Pointer, tv any, parent int) *gnode
	build = func(ptr state.Pointer, tv any, parent int) *gnode {
		i := len(g.places)
		raw := state.Canonical(tv)
		_, isObj := tv.(map[string]any)
		p := place{ptr: ptr, path: ptr.String(), target: tv, raw: raw, parent: parent, leaf: !isObj, first: i}
		for _, j := range jobs {
			if params, ok := j.Pattern.Match(ptr); ok {
				p.cands = append(p.cands, cand{job: j, params: params})
			}
		}
		g.places = append(g.places, p)
		n := &gnode{idx: i}
		if m, ok := tv.(map[string]any); ok {
			var keys []string
			for k := range m {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			n.kids = make(map[string]*gnode, len(keys))
			for _, k := range keys {
				n.kids[k] = build(ptr.Append(k), m[k], i)
			}
		}
		g.places[i].end = len(g.places)
		return n
	}
	g.root = build(state.Pointer{}, target, -1)
	g.unmet = newBitset(len(g.places))
	g.bound = newBitset(len(g.places))
	g.unmetKids = make([]int, len(g.places))
	for i := len(g.places) - 1; i >= 0; i-- {
		p := &g.places[i]
		if len(p.cands) > 0 {
			g.bound.set(i)
		}
		met := false
		if p.leaf {
			met = leafMet(doc, p)
		} else {
			met = g.unmetKids[i] == 0
		}
		if !met {
			g.unmet.set(i)
			if p.parent >= 0 {
				g.unmetKids[p.parent]++
			}
		}
	}
	return g
}

func leafMet(doc any, p *place) bool {
	cur, present := state.Get(doc, p.ptr)
	if p.target == nil {
		return !present
	}
	return present && state.Equal(cur, p.target)
}

// met reports whether the whole target is met.
func (g *goal) met() bool { return !g.unmet.has(0) }

// changed re-evaluates the places a change of the state at u can affect.
func (g *goal) changed(doc any, u state.Pointer) {
	n := g.root
	depth := 0
	for depth < len(u) {
		k, ok := n.kids[u[depth]]
		if !ok {
			break
		}
		n, depth = k, depth+1
	}
	p := &g.places[n.idx]
	switch {
	case depth == len(u): // u is a place: every leaf under it may change
		for i := p.first; i < p.end; i++ {
			if g.places[i].leaf {
				g.setLeaf(i, leafMet(doc, &g.places[i]))
			}
		}
	case p.leaf: // u is inside a leaf's value
		g.setLeaf(n.idx, leafMet(doc, p))
	}
	// Otherwise u is beside the target: nothing the target names changed.
}

func (g *goal) setLeaf(i int, met bool) {
	if met != g.unmet.has(i) {
		return // unchanged (unmet bit set means not met)
	}
	for {
		if met {
			g.unmet.clear(i)
		} else {
			g.unmet.set(i)
		}
		par := g.places[i].parent
		if par < 0 {
			return
		}
		wasMet := g.unmetKids[par] == 0
		if met {
			g.unmetKids[par]--
		} else {
			g.unmetKids[par]++
		}
		if nowMet := g.unmetKids[par] == 0; nowMet == wasMet {
			return
		} else {
			i, met = par, nowMet
		}
	}
}

// pending calls fn for every place that is unmet and bound, in Walk order,
// until fn returns false.
func (g *goal) pending(fn func(i int) bool) {
	for w := range g.unmet {
		x := g.unmet[w] & g.bound[w]
		for x != 0 {
			b := bits.TrailingZeros64(x)
			if !fn(w*64 + b) {
				return
			}
			x &= x - 1
		}
	}
}

// unmetLeaves lists the leaves not met, in Walk order.
func (g *goal) unmetLeaves() []int {
	var out []int
	for w := range g.unmet {
		x := g.unmet[w]
		for x != 0 {
			b := bits.TrailingZeros64(x)
			if i := w*64 + b; g.places[i].leaf {
				out = append(out, i)
			}
			x &= x - 1
		}
	}
	return out
}

type bitset []uint64

func newBitset(n int) bitset    { return make(bitset, (n+63)/64) }
func (b bitset) set(i int)      { b[i/64] |= 1 << (i % 64) }
func (b bitset) clear(i int)    { b[i/64] &^= 1 << (i % 64) }
func (b bitset) has(i int) bool { return b[i/64]&(1<<(i%64)) != 0 }

// or adds c's members to b.
func (b bitset) or(c bitset) {
	for k, w := range c {
		b[k] |= w
	}
}
