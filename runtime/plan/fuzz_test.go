package plan_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/tern-iot/tern/runtime/plan"
	"github.com/tern-iot/tern/runtime/state"
	"github.com/tern-iot/tern/sdk/abi"
)

// FuzzFind gives the planner random targets over counters (with methods),
// relays and a thermostat. Every plan it finds must reach the target when
// its tasks are applied in order, each task's condition holding in its
// turn, and order every pair of tasks on overlapping paths; and where a
// plan is known to exist (counters only go up, relays can be anything) it
// must find one. With Options.Partial it must find a plan always (these
// domains hit no bound), the same one where the whole target is
// reachable, and otherwise one that reaches the target without exactly
// the counters that would have to count down.
func FuzzFind(f *testing.F) {
	f.Add([]byte{3, 1, 4, 1, 5, 9, 2, 6}, false)
	f.Add([]byte{0, 0, 0, 7, 7, 7, 1, 2, 3, 250, 251}, true)
	f.Add([]byte{9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 200, 100}, false)
	f.Fuzz(func(t *testing.T, b []byte, strict bool) {
		if len(b) > 64 {
			b = b[:64]
		}
		d := counters(t, true)
		for _, j := range relays(t).jobs {
			d.jobs = append(d.jobs, j)
			d.impls[j.Name()] = impl{}
		}
		th := thermostat(t)
		for _, j := range th.jobs {
			d.jobs = append(d.jobs, j)
			d.impls[j.Name()] = th.impls[j.Name()]
		}
		cur := map[string]any{"counters": map[string]any{}, "relays": map[string]any{}, "room": map[string]any{"temp": 20.0, "heater": false}}
		tgt := map[string]any{"counters": map[string]any{}, "relays": map[string]any{}}
		feasible := true
		for i := 0; i+1 < len(b); i += 2 {
			key, val := b[i], b[i+1]
			switch key % 4 {
			case 0, 1: // a counter: state value, target value
				name := fmt.Sprintf("c%d", key%5)
				c, g := float64(val%8), float64(val/32)
				cur["counters"].(map[string]any)[name] = c
				tgt["counters"].(map[string]any)[name] = g
			case 2: // a relay: absent, on or off in state; on, off or removed in target
				name := fmt.Sprintf("r%d", key%3)
				if val%3 > 0 {
					cur["relays"].(map[string]any)[name] = val%3 == 1
				}
				switch val / 86 {
				case 0:
					tgt["relays"].(map[string]any)[name] = true
				case 1:
					tgt["relays"].(map[string]any)[name] = false
				default:
					tgt["relays"].(map[string]any)[name] = nil
				}
			case 3: // the room's target temperature
				tgt["room"] = map[string]any{"temp": float64(15 + val%10)}
			}
		}
		var down []string // counters that would have to count down
		for name, g := range tgt["counters"].(map[string]any) {
			if c := cur["counters"].(map[string]any)[name]; g.(float64) < c.(float64) {
				feasible = false
				down = append(down, "/counters/"+name)
			}
		}
		slices.Sort(down)
		pp, err := plan.Find(context.Background(), d.jobs, d, cur, tgt, plan.Options{Strict: strict, Partial: true})
		if err != nil {
			t.Fatalf("partial: %v", err)
		}
		var unreached []string
		for _, st := range pp.Unreached {
			unreached = append(unreached, st.Path)
		}
		if !slices.Equal(unreached, down) {
			t.Fatalf("partial plan leaves %q unreached, want %q", unreached, down)
		}
		checkDAG(t, pp)
		if got, want := simulate(t, pp, d, cur), withoutUnreached(t, tgt, pp); !state.Satisfies(got, want) {
			t.Fatalf("partial plan %s reaches %s, not %s", shape(pp), state.Canonical(got), state.Canonical(want))
		}
		p, err := plan.Find(context.Background(), d.jobs, d, cur, tgt, plan.Options{Strict: strict})
		if err != nil {
			if !errors.Is(err, plan.ErrNoPlan) {
				t.Fatalf("error that is not ErrNoPlan: %v", err)
			}
			if feasible {
				t.Fatalf("no plan found where one exists:\ncurrent %s\ntarget  %s\n%v", state.Canonical(cur), state.Canonical(tgt), err)
			}
			return
		}
		if !feasible {
			t.Fatalf("plan found where none exists: %s", shape(p))
		}
		if shape(pp) != shape(p) {
			t.Fatalf("partial plan %s, all-or-nothing plan %s: a reachable target must give the same plan", shape(pp), shape(p))
		}
		checkDAG(t, p)
		if got := simulate(t, p, d, cur); !plan.Satisfied(d.jobs, got, tgt, strict) {
			t.Fatalf("plan %s reaches %s, not the target %s", shape(p), state.Canonical(got), state.Canonical(tgt))
		}
		for _, task := range p.Tasks {
			if task.Job.Spec.IsMethod() || task.Job.Spec.Op != abi.Any && task.Op == "" {
				t.Fatalf("task %s: methods never appear in a plan, and every task has an op", task)
			}
		}
	})
}
