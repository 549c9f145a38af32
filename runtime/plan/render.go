package plan

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file renders plans for people: as Mermaid and Graphviz graphs and as
// a plain listing. All three show the plan's transitive reduction: an edge
// dep → t is left out when dep is already reachable from another of t's
// deps, since the ordering it states follows from the others.

// Mermaid renders p as a Mermaid flowchart ("flowchart TD"). Each task is a
// box labelled with its job, operation and path, plus a second line "via
// module.method" naming the innermost method that expanded to it, if any.
// A start circle leads to the tasks that wait for nothing, and the tasks
// nothing waits for lead to an end circle; an empty plan is start --> end.
// The output is deterministic: nodes in task ID order, edges sorted.
func Mermaid(p *Plan) string {
	g := analyzeRender(p)
	var b strings.Builder
	b.WriteString("flowchart TD\n")
	b.WriteString("  start((\"start\"))\n")
	b.WriteString("  finish((\"end\"))\n")
	for _, t := range g.tasks {
		fmt.Fprintf(&b, "  %s[\"%s\"]\n", renderNode(t.ID), mermaidLabel(t))
	}
	g.edges(func(from, to string) {
		fmt.Fprintf(&b, "  %s --> %s\n", from, to)
	})
	return b.String()
}

// DOT renders p as a Graphviz digraph named "plan", with the same nodes and
// edges as Mermaid: boxes for tasks, circles for start and end.
func DOT(p *Plan) string {
	g := analyzeRender(p)
	var b strings.Builder
	b.WriteString("digraph plan {\n")
	b.WriteString("  node [shape=box];\n")
	b.WriteString("  start [label=\"start\", shape=circle];\n")
	b.WriteString("  finish [label=\"end\", shape=circle];\n")
	for _, t := range g.tasks {
		fmt.Fprintf(&b, "  %s [label=\"%s\"];\n", renderNode(t.ID), dotLabel(t))
	}
	g.edges(func(from, to string) {
		fmt.Fprintf(&b, "  %s -> %s;\n", from, to)
	})
	b.WriteString("}\n")
	return b.String()
}

// Text renders p as a listing for a terminal: a header giving the number
// of tasks and how many can run at once at most, then one line per task in
// ID order with aligned columns:
//
//	3  counters.plus_one  update  /counters/a  after 1,2  (via counters.plus_two /counters/a)
//
// "after" lists the tasks it waits for (those implied by others left out)
// and "via" the methods that expanded to it, outermost first. The
// parallelism is estimated as the most tasks at the same depth in the DAG.
// An empty plan renders as a single line saying there is nothing to do.
func Text(p *Plan) string {
	g := analyzeRender(p)
	if len(g.tasks) == 0 {
		return "nothing to do: the state already meets the target\n"
	}
	var b strings.Builder
	switch w := g.width(); {
	case len(g.tasks) == 1:
		b.WriteString("1 task\n")
	case w <= 1:
		fmt.Fprintf(&b, "%d tasks, in sequence\n", len(g.tasks))
	default:
		fmt.Fprintf(&b, "%d tasks, %d parallel branches at most\n", len(g.tasks), w)
	}

	rows := make([][5]string, len(g.tasks))
	var wid [5]int
	for i, t := range g.tasks {
		r := &rows[i]
		r[0] = strconv.Itoa(t.ID)
		r[1] = renderJob(t)
		r[2] = string(t.Op)
		r[3] = renderPath(t)
		if len(g.deps[i]) > 0 {
			ids := make([]string, len(g.deps[i]))
			for k, d := range g.deps[i] {
				ids[k] = strconv.Itoa(g.tasks[d].ID)
			}
			r[4] = "after " + strings.Join(ids, ",")
		}
		for c, s := range r {
			wid[c] = max(wid[c], utf8.RuneCountInString(s))
		}
	}
	for i, t := range g.tasks {
		r := rows[i]
		var line strings.Builder
		line.WriteString("  ")
		renderPad(&line, r[0], wid[0], true)
		for c := 1; c < len(r); c++ {
			if wid[c] == 0 {
				continue
			}
			line.WriteString("  ")
			renderPad(&line, r[c], wid[c], false)
		}
		if len(t.Via) > 0 {
			line.WriteString("  (via ")
			line.WriteString(strings.Join(t.Via, " > "))
			line.WriteString(")")
		}
		b.WriteString(strings.TrimRight(line.String(), " "))
		b.WriteByte('\n')
	}
	return b.String()
}

// renderPad writes s to b padded with spaces to w runes, on the left if right.
func renderPad(b *strings.Builder, s string, w int, right bool) {
	n := max(w-utf8.RuneCountInString(s), 0)
	if right {
		b.WriteString(strings.Repeat(" ", n))
	}
	b.WriteString(s)
	if !right {
		b.WriteString(strings.Repeat(" ", n))
	}
}

// renderGraph is a plan prepared for rendering.
type renderGraph struct {
	tasks []*Task // sorted by ID
	// deps are the reduced deps of each task, as indexes into tasks,
	// ascending.
	deps  [][]int
	level []int  // 1 + the greatest level of the task's deps
	used  []bool // some task waits for this one
}

// analyzeRender sorts p's tasks by ID and reduces their deps. Deps naming
// no task of p, a task's own ID or a repeated ID are ignored. Should the
// deps form a cycle, the tasks on it and after it keep all their deps.
func analyzeRender(p *Plan) *renderGraph {
	g := &renderGraph{}
	if p == nil {
		return g
	}
	for _, t := range p.Tasks {
		if t != nil {
			g.tasks = append(g.tasks, t)
		}
	}
	slices.SortStableFunc(g.tasks, func(a, b *Task) int { return cmp.Compare(a.ID, b.ID) })
	n := len(g.tasks)
	index := make(map[int]int, n)
	for i, t := range g.tasks {
		if _, dup := index[t.ID]; !dup {
			index[t.ID] = i
		}
	}

	// The deps as indexes, and the tasks waiting for each.
	raw := make([][]int, n)
	waiting := make([][]int, n)
	pending := make([]int, n)
	for i, t := range g.tasks {
		for _, id := range t.Deps {
			if d, ok := index[id]; ok && d != i {
				raw[i] = append(raw[i], d)
			}
		}
		slices.Sort(raw[i])
		raw[i] = slices.Compact(raw[i])
		for _, d := range raw[i] {
			waiting[d] = append(waiting[d], i)
		}
		pending[i] = len(raw[i])
	}

	// A topological order (Kahn's); deps normally name earlier tasks, so
	// this is ID order.
	order := make([]int, 0, n)
	for i := range n {
		if pending[i] == 0 {
			order = append(order, i)
		}
	}
	for k := 0; k < len(order); k++ {
		for _, w := range waiting[order[k]] {
			if pending[w]--; pending[w] == 0 {
				order = append(order, w)
			}
		}
	}
	acyclic := len(order)
	if acyclic < n {
		seen := make([]bool, n)
		for _, i := range order {
			seen[i] = true
		}
		for i := range n {
			if !seen[i] {
				order = append(order, i)
			}
		}
	}

	// anc[i] holds the strict ancestors of task i. A dep is redundant when
	// it is an ancestor of another dep, that is, when it is in the union of
	// the deps' ancestor sets.
	words := (n + 63) / 64
	anc := make([]bitset, n)
	g.deps = make([][]int, n)
	g.level = make([]int, n)
	g.used = make([]bool, n)
	for k, i := range order {
		a := make(bitset, words)
		lvl := 0
		for _, d := range raw[i] {
			if anc[d] != nil {
				a.or(anc[d])
			}
			lvl = max(lvl, g.level[d])
		}
		g.level[i] = lvl + 1
		for _, d := range raw[i] {
			if k >= acyclic || !a.has(d) {
				g.deps[i] = append(g.deps[i], d)
				g.used[d] = true
			}
		}
		for _, d := range raw[i] {
			a.set(d)
		}
		anc[i] = a
	}
	return g
}

// width is the most tasks at the same level.
func (g *renderGraph) width() int {
	count := map[int]int{}
	w := 0
	for _, l := range g.level {
		count[l]++
		w = max(w, count[l])
	}
	return w
}

// edges calls f with each edge between node IDs, sorted: from start first,
// then between tasks by source and target ID, then to the end.
func (g *renderGraph) edges(f func(from, to string)) {
	if len(g.tasks) == 0 {
		f("start", "finish")
		return
	}
	for i, t := range g.tasks {
		if len(g.deps[i]) == 0 {
			f("start", renderNode(t.ID))
		}
	}
	type edge struct{ from, to int }
	var es []edge
	for i, ds := range g.deps {
		for _, d := range ds {
			es = append(es, edge{d, i})
		}
	}
	slices.SortFunc(es, func(a, b edge) int {
		return cmp.Or(cmp.Compare(a.from, b.from), cmp.Compare(a.to, b.to))
	})
	for _, e := range es {
		f(renderNode(g.tasks[e.from].ID), renderNode(g.tasks[e.to].ID))
	}
	for i, t := range g.tasks {
		if !g.used[i] {
			f(renderNode(t.ID), "finish")
		}
	}
}

// renderNode names task id's node: "t3", or "tm3" for -3.
func renderNode(id int) string {
	if id < 0 {
		return "tm" + strconv.Itoa(-id)
	}
	return "t" + strconv.Itoa(id)
}

func renderJob(t *Task) string {
	if t.Job == nil {
		return "?"
	}
	return t.Job.Name()
}

// renderPath is t's path as a JSON Pointer, `""` for the whole document.
func renderPath(t *Task) string {
	if len(t.Path) == 0 {
		return `""`
	}
	return t.Path.String()
}

// renderLabel is a task's label: "job op path", then the innermost method, if
// any, on a second line.
func renderLabel(t *Task) (first, second string) {
	first = renderJob(t) + " " + string(t.Op) + " " + renderPath(t)
	if len(t.Via) > 0 {
		via := t.Via[len(t.Via)-1]
		if m, _, ok := strings.Cut(via, " "); ok {
			via = m
		}
		second = "via " + via
	}
	return first, second
}

func mermaidLabel(t *Task) string {
	first, second := renderLabel(t)
	s := mermaidEscape(first)
	if second != "" {
		s += "<br/>" + mermaidEscape(second)
	}
	return s
}

// mermaidEscape makes s safe inside a quoted Mermaid label, using
// Mermaid's "#name;" and "#code;" entity codes.
func mermaidEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString("#quot;")
		case r == '#':
			b.WriteString("#35;")
		case r == '<':
			b.WriteString("#lt;")
		case r == '>':
			b.WriteString("#gt;")
		case r == '&':
			b.WriteString("#amp;")
		case r == '`':
			b.WriteString("#96;")
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "#%d;", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func dotLabel(t *Task) string {
	first, second := renderLabel(t)
	s := dotEscape(first)
	if second != "" {
		s += `\n` + dotEscape(second)
	}
	return s
}

// dotEscape makes s safe inside a DOT double-quoted string.
func dotEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
