package plan

import (
	"slices"

	"github.com/tern-iot/tern/runtime/state"
)

// link adds the DAG's edges. A task waits for every earlier task that
// changed a path overlapping one it changes or reads (it must see that
// change), and for every earlier task that read a path overlapping the one
// it changes (that task must not see this change): then every order the
// DAG allows gives each task the same values the plan's sequence gave it,
// so it decides and does the same (RATIONALE.md, "The plan's DAG").
//
// Waiting for the latest change at each overlapping path is enough, since
// that one waited for the earlier ones there; a change at a path also
// orders everything that read at or under it, so those readers are
// forgotten there. A trie of paths keeps this proportional to the plan's
// size, not its square.
func link(p *Plan) {
	type node struct {
		last    int   // latest task that changed exactly this path, -1 if none
		readers []int // tasks that read exactly this path since
		kids    map[string]*node
	}
	root := &node{last: -1}
	at := func(ptr state.Pointer) *node {
		n := root
		for _, tok := range ptr {
			k, ok := n.kids[tok]
			if !ok {
				k = &node{last: -1}
				if n.kids == nil {
					n.kids = map[string]*node{}
				}
				n.kids[tok] = k
			}
			n = k
		}
		return n
	}
	var under func(n *node, fn func(*node))
	under = func(n *node, fn func(*node)) {
		fn(n)
		for _, k := range n.kids {
			under(k, fn)
		}
	}
	// overlapping calls fn with the nodes of ptr's ancestors, of ptr and
	// of every path under it, as far as the trie has them.
	overlapping := func(ptr state.Pointer, fn func(*node)) {
		n := root
		for _, tok := range ptr {
			fn(n)
			if n = n.kids[tok]; n == nil {
				return
			}
		}
		under(n, fn)
	}
	for _, t := range p.Tasks {
		var deps []int
		changed := func(n *node) {
			if n.last >= 0 {
				deps = append(deps, n.last)
			}
		}
		overlapping(t.Path, func(n *node) {
			changed(n)
			deps = append(deps, n.readers...)
		})
		for _, r := range t.Reads {
			overlapping(r, changed)
		}
		slices.Sort(deps)
		t.Deps = slices.Compact(deps)

		n := at(t.Path)
		n.last = t.ID
		under(n, func(n *node) { n.readers = nil })
		for _, r := range t.Reads {
			m := at(r)
			if len(m.readers) == 0 || m.readers[len(m.readers)-1] != t.ID {
				m.readers = append(m.readers, t.ID)
			}
		}
	}
}
