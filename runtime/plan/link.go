package plan

import "slices"

// link adds the DAG's edges: each task waits for the earlier tasks whose
// paths overlap its own. Waiting for the latest task at each overlapping
// path is enough, since that one waited for the earlier ones there. A trie
// of paths keeps this proportional to the plan's size, not its square.
func link(p *Plan) {
	type node struct {
		last int // latest task at exactly this path, -1 if none
		kids map[string]*node
	}
	root := &node{last: -1}
	var under func(n *node, deps []int) []int
	under = func(n *node, deps []int) []int {
		for _, k := range n.kids {
			if k.last >= 0 {
				deps = append(deps, k.last)
			}
			deps = under(k, deps)
		}
		return deps
	}
	for _, t := range p.Tasks {
		var deps []int
		n := root
		for _, tok := range t.Path {
			if n.last >= 0 {
				deps = append(deps, n.last)
			}
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
		if n.last >= 0 {
			deps = append(deps, n.last)
		}
		deps = under(n, deps)
		slices.Sort(deps)
		t.Deps = slices.Compact(deps)
		n.last = t.ID
	}
}
