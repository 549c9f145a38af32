package plan_test

import (
	"strings"
	"testing"

	"github.com/tern-iot/tern/runtime/plan"
	"github.com/tern-iot/tern/runtime/state"
	"github.com/tern-iot/tern/sdk/abi"
)

func renderJob(t testing.TB, name, path string) *plan.Job {
	t.Helper()
	j, err := plan.NewJob("counters", abi.JobSpec{Name: name, Path: path, Op: abi.Update})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func renderTask(j *plan.Job, id int, path string, deps ...int) *plan.Task {
	return &plan.Task{ID: id, Job: j, Op: j.Spec.Op, Path: state.MustPointer(path), Deps: deps}
}

func TestRender(t *testing.T) {
	plus := renderJob(t, "plus_one", "/counters/:name")
	reset := renderJob(t, "reset", "/counters")
	via := func(tk *plan.Task, methods ...string) *plan.Task { tk.Via = methods; return tk }
	for _, tc := range []struct {
		name               string
		plan               *plan.Plan
		mermaid, dot, text string
	}{
		{
			name: "empty",
			plan: &plan.Plan{},
			mermaid: `flowchart TD
  start(("start"))
  finish(("end"))
  start --> finish
`,
			dot: `digraph plan {
  node [shape=box];
  start [label="start", shape=circle];
  finish [label="end", shape=circle];
  start -> finish;
}
`,
			text: "nothing to do: the state already meets the target\n",
		},
		{
			name: "sequence",
			plan: &plan.Plan{Tasks: []*plan.Task{
				renderTask(plus, 1, "/counters/a"),
				renderTask(plus, 2, "/counters/a", 1),
			}},
			mermaid: `flowchart TD
  start(("start"))
  finish(("end"))
  t1["counters.plus_one update /counters/a"]
  t2["counters.plus_one update /counters/a"]
  start --> t1
  t1 --> t2
  t2 --> finish
`,
			dot: `digraph plan {
  node [shape=box];
  start [label="start", shape=circle];
  finish [label="end", shape=circle];
  t1 [label="counters.plus_one update /counters/a"];
  t2 [label="counters.plus_one update /counters/a"];
  start -> t1;
  t1 -> t2;
  t2 -> finish;
}
`,
			text: `2 tasks, in sequence
  1  counters.plus_one  update  /counters/a
  2  counters.plus_one  update  /counters/a  after 1
`,
		},
		{
			name: "fork and join",
			plan: &plan.Plan{Tasks: []*plan.Task{
				// Out of order on purpose: rendering sorts by ID.
				via(renderTask(reset, 3, "/counters", 2, 1), "counters.tidy /", "counters.reset_all /counters"),
				via(renderTask(plus, 1, "/counters/a"), "counters.plus_two /counters/a"),
				renderTask(plus, 2, "/counters/b"),
			}},
			mermaid: `flowchart TD
  start(("start"))
  finish(("end"))
  t1["counters.plus_one update /counters/a<br/>via counters.plus_two"]
  t2["counters.plus_one update /counters/b"]
  t3["counters.reset update /counters<br/>via counters.reset_all"]
  start --> t1
  start --> t2
  t1 --> t3
  t2 --> t3
  t3 --> finish
`,
			dot: `digraph plan {
  node [shape=box];
  start [label="start", shape=circle];
  finish [label="end", shape=circle];
  t1 [label="counters.plus_one update /counters/a\nvia counters.plus_two"];
  t2 [label="counters.plus_one update /counters/b"];
  t3 [label="counters.reset update /counters\nvia counters.reset_all"];
  start -> t1;
  start -> t2;
  t1 -> t3;
  t2 -> t3;
  t3 -> finish;
}
`,
			text: `3 tasks, 2 parallel branches at most
  1  counters.plus_one  update  /counters/a             (via counters.plus_two /counters/a)
  2  counters.plus_one  update  /counters/b
  3  counters.reset     update  /counters    after 1,2  (via counters.tidy / > counters.reset_all /counters)
`,
		},
		{
			name: "redundant edge reduced",
			plan: &plan.Plan{Tasks: []*plan.Task{
				renderTask(plus, 1, "/counters/a"),
				renderTask(plus, 2, "/counters/a", 1),
				renderTask(plus, 3, "/counters/b"),
				renderTask(reset, 4, "/counters", 1, 2, 3),
			}},
			mermaid: `flowchart TD
  start(("start"))
  finish(("end"))
  t1["counters.plus_one update /counters/a"]
  t2["counters.plus_one update /counters/a"]
  t3["counters.plus_one update /counters/b"]
  t4["counters.reset update /counters"]
  start --> t1
  start --> t3
  t1 --> t2
  t2 --> t4
  t3 --> t4
  t4 --> finish
`,
			dot: `digraph plan {
  node [shape=box];
  start [label="start", shape=circle];
  finish [label="end", shape=circle];
  t1 [label="counters.plus_one update /counters/a"];
  t2 [label="counters.plus_one update /counters/a"];
  t3 [label="counters.plus_one update /counters/b"];
  t4 [label="counters.reset update /counters"];
  start -> t1;
  start -> t3;
  t1 -> t2;
  t2 -> t4;
  t3 -> t4;
  t4 -> finish;
}
`,
			text: `4 tasks, 2 parallel branches at most
  1  counters.plus_one  update  /counters/a
  2  counters.plus_one  update  /counters/a  after 1
  3  counters.plus_one  update  /counters/b
  4  counters.reset     update  /counters    after 2,3
`,
		},
		{
			name: "escaping",
			plan: &plan.Plan{Tasks: []*plan.Task{
				renderTask(plus, 1, `/counters/a"b\c#<d>`),
			}},
			mermaid: `flowchart TD
  start(("start"))
  finish(("end"))
  t1["counters.plus_one update /counters/a#quot;b\c#35;#lt;d#gt;"]
  start --> t1
  t1 --> finish
`,
			dot: `digraph plan {
  node [shape=box];
  start [label="start", shape=circle];
  finish [label="end", shape=circle];
  t1 [label="counters.plus_one update /counters/a\"b\\c#<d>"];
  start -> t1;
  t1 -> finish;
}
`,
			text: `1 task
  1  counters.plus_one  update  /counters/a"b\c#<d>
`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []struct {
				format string
				render func(*plan.Plan) string
				want   string
			}{
				{"Mermaid", plan.Mermaid, tc.mermaid},
				{"DOT", plan.DOT, tc.dot},
				{"Text", plan.Text, tc.text},
			} {
				if got := r.render(tc.plan); got != r.want {
					t.Errorf("%s:\ngot:\n%s\nwant:\n%s", r.format, got, r.want)
				}
				if got := r.render(tc.plan); got != r.want {
					t.Errorf("%s is not deterministic", r.format)
				}
			}
		})
	}
}

func TestRenderNil(t *testing.T) {
	if got, want := plan.Mermaid(nil), "flowchart TD\n  start((\"start\"))\n  finish((\"end\"))\n  start --> finish\n"; got != want {
		t.Errorf("Mermaid(nil) = %q, want %q", got, want)
	}
	if got := plan.DOT(nil); !strings.Contains(got, "start -> finish;") {
		t.Errorf("DOT(nil) = %q", got)
	}
	if got := plan.Text(nil); got != "nothing to do: the state already meets the target\n" {
		t.Errorf("Text(nil) = %q", got)
	}
}

func TestRenderTextHeader(t *testing.T) {
	j := renderJob(t, "plus_one", "/counters/:name")
	for _, tc := range []struct {
		name string
		deps [][]int // deps of tasks 0, 1, ...
		want string
	}{
		{"one task", [][]int{nil}, "1 task"},
		{"two independent", [][]int{nil, nil}, "2 tasks, 2 parallel branches at most"},
		{"chain", [][]int{nil, {0}, {1}, {2}}, "4 tasks, in sequence"},
		{"chain with shortcuts", [][]int{nil, {0}, {0, 1}, {0, 1, 2}}, "4 tasks, in sequence"},
		{"diamond", [][]int{nil, {0}, {0}, {1, 2}}, "4 tasks, 2 parallel branches at most"},
		// Levels: 0, 1, 2 at 1; 3 at 2; 4 at 3; 5 at 4.
		{"wide start", [][]int{nil, nil, nil, {0}, {3}, {1, 2, 4}}, "6 tasks, 3 parallel branches at most"},
		// Levels: 0 at 1; 1..4 at 2; 5 at 3.
		{"fan out and in", [][]int{nil, {0}, {0}, {0}, {0}, {1, 2, 3, 4}}, "6 tasks, 4 parallel branches at most"},
		// Unknown and self deps are ignored.
		{"bad deps", [][]int{{7}, {1}}, "2 tasks, 2 parallel branches at most"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &plan.Plan{}
			for i, d := range tc.deps {
				p.Tasks = append(p.Tasks, renderTask(j, i, "/counters/a", d...))
			}
			got, _, _ := strings.Cut(plan.Text(p), "\n")
			if got != tc.want {
				t.Errorf("header = %q, want %q", got, tc.want)
			}
		})
	}
}

// A task waiting for every earlier one renders as a chain, and a cycle in
// a malformed plan neither hangs nor panics.
func TestRenderReduction(t *testing.T) {
	j := renderJob(t, "plus_one", "/counters/:name")
	const n = 1000
	p := &plan.Plan{}
	for i := range n {
		deps := make([]int, i)
		for k := range deps {
			deps[k] = k
		}
		p.Tasks = append(p.Tasks, renderTask(j, i, "/counters/a", deps...))
	}
	dot := plan.DOT(p)
	if got, want := strings.Count(dot, " -> "), n+1; got != want {
		t.Errorf("%d edges, want %d", got, want)
	}
	if !strings.Contains(dot, "t998 -> t999;") || strings.Contains(dot, "t0 -> t2;") {
		t.Error("not reduced to a chain")
	}
	if h, _, _ := strings.Cut(plan.Text(p), "\n"); h != "1000 tasks, in sequence" {
		t.Errorf("header = %q", h)
	}

	cyclic := &plan.Plan{Tasks: []*plan.Task{
		renderTask(j, 0, "/counters/a", 1),
		renderTask(j, 1, "/counters/a", 0),
		renderTask(j, 2, "/counters/a", 0, 1),
	}}
	for _, s := range []string{plan.Mermaid(cyclic), plan.DOT(cyclic), plan.Text(cyclic)} {
		if s == "" {
			t.Error("empty output for a cyclic plan")
		}
	}
}
