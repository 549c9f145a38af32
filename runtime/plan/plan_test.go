package plan_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-iot/tern/runtime/plan"
	"github.com/tern-iot/tern/runtime/state"
	"github.com/tern-iot/tern/sdk/abi"
)

func TestFind(t *testing.T) {
	for _, tc := range []struct {
		name            string
		domain          func(testing.TB) *domain
		strict          bool
		partial         bool
		limits          plan.Limits
		current, target string
		want            string   // shape of the plan
		wantErr         []string // the error mentions each
		// unreached are the paths a partial plan leaves out, and why
		// mentions each in its explanation (Plan.UnreachedError).
		unreached []string
		why       []string
	}{
		{
			name:    "counters: one branch per counter",
			domain:  func(t testing.TB) *domain { return counters(t, false) },
			current: `{"counters":{"a":0,"b":0}}`,
			target:  `{"counters":{"a":2,"b":1}}`,
			want:    "par(seq(plus_one /counters/a, plus_one /counters/a), plus_one /counters/b)",
		},
		{
			name:    "counters: methods expand first",
			domain:  func(t testing.TB) *domain { return counters(t, true) },
			current: `{"counters":{"a":0}}`,
			target:  `{"counters":{"a":3}}`,
			want:    "seq(plus_one /counters/a, plus_one /counters/a, plus_one /counters/a)",
		},
		{
			name:    "counters: already there",
			domain:  func(t testing.TB) *domain { return counters(t, false) },
			current: `{"counters":{"a":2}}`,
			target:  `{"counters":{"a":2}}`,
			want:    "",
		},
		{
			name:    "counters: counting down is impossible",
			domain:  func(t testing.TB) *domain { return counters(t, false) },
			current: `{"counters":{"a":3}}`,
			target:  `{"counters":{"a":1}}`,
			wantErr: []string{"/counters/a: is 3, target 1", "counters.plus_one: condition does not hold"},
		},
		{
			name:    "relays: create, update and delete in parallel",
			domain:  relays,
			current: `{"relays":{"fan":false,"pump":true,"lamp":true}}`,
			target:  `{"relays":{"fan":true,"heater":true,"pump":null}}`,
			want:    "par(switch /relays/fan, add /relays/heater, remove /relays/pump)",
		},
		{
			name:    "relays: strict removes what the target leaves out",
			domain:  relays,
			strict:  true,
			current: `{"relays":{"fan":false,"lamp":true,"pump":true}}`,
			target:  `{"relays":{"fan":true}}`,
			want:    "par(switch /relays/fan, remove /relays/lamp, remove /relays/pump)",
		},
		{
			name:    "relays: no job binds the path",
			domain:  relays,
			current: `{}`,
			target:  `{"lights":{"porch":true}}`,
			wantErr: []string{"/lights/porch: is absent, target true: no job binds this path or a parent of it"},
		},
		{
			name: "relays: op not handled",
			domain: func(t testing.TB) *domain {
				return (&domain{}).action(t, "relay.switch", "/relays/:name", abi.Update, impl{})
			},
			current: `{}`,
			target:  `{"relays":{"heater":true}}`,
			wantErr: []string{"relay.switch: binds update, this is create"},
		},
		{
			name:    "thermostat: warm the room",
			domain:  thermostat,
			current: `{"room":{"temp":18,"heater":false}}`,
			target:  `{"room":{"temp":21}}`,
			want:    "seq(heater /room/heater, wait /room)",
		},
		{
			name:    "thermostat: cool the room",
			domain:  thermostat,
			current: `{"room":{"temp":24,"heater":true}}`,
			target:  `{"room":{"temp":21}}`,
			want:    "seq(heater /room/heater, wait /room)",
		},
		{
			name:    "thermostat: warm the room, then switch the heater off",
			domain:  thermostat,
			current: `{"room":{"temp":18,"heater":false}}`,
			target:  `{"room":{"temp":21,"heater":false}}`,
			want:    "seq(heater /room/heater, wait /room, heater /room/heater)",
		},
		{
			name:    "thermostat: a room without a temperature cannot be warmed",
			domain:  thermostat,
			current: `{"room":{"heater":false}}`,
			target:  `{"room":{"temp":21}}`,
			wantErr: []string{"/room/temp: is absent, target 21", "thermo.warm (at /room): condition does not hold"},
		},
		{
			name: "backtracking: the first choice leads nowhere",
			domain: func(t testing.TB) *domain {
				d := &domain{}
				d.action(t, "n.big", "/n", abi.Update, impl{
					cond:   func(cur, tgt any) bool { return num(cur) < num(tgt) },
					effect: func(cur, _ any) any { return num(cur) + 5 },
				})
				d.action(t, "n.small", "/n", abi.Update, impl{
					cond:   func(cur, tgt any) bool { return num(cur) < num(tgt) },
					effect: func(cur, _ any) any { return num(cur) + 1 },
				})
				return d
			},
			current: `{"n":0}`,
			target:  `{"n":3}`,
			want:    "seq(small /n, small /n, small /n)",
		},
		{
			name: "cycle detected",
			domain: func(t testing.TB) *domain {
				return (&domain{}).action(t, "x.flip", "/x", abi.Any, impl{
					cond:   func(any, any) bool { return true },
					effect: func(cur, _ any) any { return -num(cur) },
				})
			},
			current: `{"x":1}`,
			target:  `{"x":2}`,
			wantErr: []string{"x.flip: applies, but leads back to a state already tried (a cycle)"},
		},
		{
			name: "method recursion is bounded",
			domain: func(t testing.TB) *domain {
				return (&domain{}).method(t, "m.again", "/x", abi.Any, impl{
					expand: func(path string, _, _ any) []plan.Step { return []plan.Step{step("again", path)} },
				})
			},
			current: `{"x":1}`,
			target:  `{"x":2}`,
			wantErr: []string{"m.again: step 1 (again /x): step 1 (again /x)", "methods nest deeper than 32"},
		},
		{
			name: "method naming a job that does not exist",
			domain: func(t testing.TB) *domain {
				return (&domain{}).method(t, "m.fix", "/x", abi.Any, impl{
					expand: func(path string, _, _ any) []plan.Step { return []plan.Step{step("other.nope", path)} },
				})
			},
			current: `{"x":1}`,
			target:  `{"x":2}`,
			wantErr: []string{"m.fix: step 1 (other.nope /x): no job other.nope"},
		},
		{
			name:    "depth bound",
			domain:  func(t testing.TB) *domain { return counters(t, false) },
			limits:  plan.Limits{Depth: 3},
			current: `{"counters":{"a":0}}`,
			target:  `{"counters":{"a":5}}`,
			wantErr: []string{"depth bound (3 steps)", "stuck after 3 planned tasks", "/counters/a: is 3, target 5"},
		},
		{
			name:    "tries bound",
			domain:  func(t testing.TB) *domain { return counters(t, false) },
			limits:  plan.Limits{Tries: 3},
			current: `{"counters":{"a":0}}`,
			target:  `{"counters":{"a":5}}`,
			wantErr: []string{"tried 3 jobs"},
		},
		{
			name:      "partial: counters, one counts down",
			domain:    func(t testing.TB) *domain { return counters(t, false) },
			partial:   true,
			current:   `{"counters":{"a":0,"b":3,"c":0}}`,
			target:    `{"counters":{"a":1,"b":1,"c":2}}`,
			want:      "par(plus_one /counters/a, seq(plus_one /counters/c, plus_one /counters/c))",
			unreached: []string{"/counters/b"},
			why:       []string{"at 1 place; a partial plan leaves it out", "/counters/b: is 3, target 1", "counters.plus_one: condition does not hold"},
		},
		{
			name:      "partial: no job binds one path",
			domain:    relays,
			partial:   true,
			current:   `{"relays":{"fan":false}}`,
			target:    `{"relays":{"fan":true},"lights":{"porch":true,"hall":false}}`,
			want:      "switch /relays/fan",
			unreached: []string{"/lights/hall", "/lights/porch"},
			why:       []string{"/lights/hall: is absent, target false: no job binds this path or a parent of it", "/lights/porch: is absent, target true: no job binds this path or a parent of it"},
		},
		{
			name:      "partial: the jobs bind at the parent",
			domain:    thermostat,
			partial:   true,
			current:   `{"room":{"heater":false}}`,
			target:    `{"room":{"temp":21,"heater":true}}`,
			want:      "heater /room/heater",
			unreached: []string{"/room/temp"},
			why:       []string{"/room/temp: is absent, target 21", "thermo.warm (at /room): condition does not hold", "thermo.wait (at /room): condition does not hold"},
		},
		{
			name: "partial: a method fails for one child, its sibling is reached",
			domain: func(t testing.TB) *domain {
				d := &domain{}
				d.method(t, "box.setup", "/box", abi.Any, impl{
					expand: func(string, any, any) []plan.Step { return []plan.Step{step("set", "/box/x"), step("set", "/box/y")} },
				})
				// set cannot reach 2 or more.
				return d.action(t, "box.set", "/box/:k", abi.Any, impl{
					cond:   func(_, tgt any) bool { return num(tgt) < 2 },
					effect: func(_, tgt any) any { return tgt },
				})
			},
			partial:   true,
			current:   `{}`,
			target:    `{"box":{"x":1,"y":2}}`,
			want:      "set /box/x",
			unreached: []string{"/box/y"},
			why:       []string{"/box/y: is absent, target 2", "box.set: condition does not hold"},
		},
		{
			name: "partial strict: a delete that cannot happen, and an update dropped is not deleted",
			domain: func(t testing.TB) *domain {
				d := &domain{}
				d.action(t, "relay.remove", "/relays/:name", abi.Delete, impl{
					// A relay that is on cannot be taken out of service.
					cond:   func(cur, _ any) bool { return cur != true },
					effect: func(any, any) any { return nil },
				})
				// A relay that is on is stuck on.
				return d.action(t, "relay.switch", "/relays/:name", abi.Update, impl{
					cond:   func(cur, _ any) bool { return cur != true },
					effect: func(_, tgt any) any { return tgt },
				})
			},
			strict:    true,
			partial:   true,
			current:   `{"relays":{"a":false,"b":false,"c":true,"d":false,"e":true}}`,
			target:    `{"relays":{"a":true,"e":false}}`,
			want:      "par(switch /relays/a, remove /relays/b, remove /relays/d)",
			unreached: []string{"/relays/c", "/relays/e"},
			why: []string{
				"at 2 places",
				"/relays/c: is true, target null\n    relay.remove: condition does not hold",
				"/relays/e: is true, target false\n    relay.remove: binds delete, this is update\n    relay.switch: condition does not hold",
			},
		},
		{
			name:      "partial: nothing reachable is an empty plan that says why",
			domain:    func(t testing.TB) *domain { return counters(t, false) },
			partial:   true,
			current:   `{"counters":{"a":3}}`,
			target:    `{"counters":{"a":1},"lights":{"porch":true}}`,
			want:      "",
			unreached: []string{"/counters/a", "/lights/porch"},
			why:       []string{"/counters/a: is 3, target 1", "counters.plus_one: condition does not hold", "/lights/porch: is absent, target true: no job binds"},
		},
		{
			name:      "partial: a reachable target is the same plan, with nothing unreached",
			domain:    func(t testing.TB) *domain { return counters(t, true) },
			partial:   true,
			current:   `{"counters":{"a":0}}`,
			target:    `{"counters":{"a":3}}`,
			want:      "seq(plus_one /counters/a, plus_one /counters/a, plus_one /counters/a)",
			unreached: nil,
		},
		{
			name: "partial: backtracking still reaches the whole target",
			domain: func(t testing.TB) *domain {
				d := &domain{}
				d.action(t, "n.big", "/n", abi.Update, impl{
					cond:   func(cur, tgt any) bool { return num(cur) < num(tgt) },
					effect: func(cur, _ any) any { return num(cur) + 5 },
				})
				d.action(t, "n.small", "/n", abi.Update, impl{
					cond:   func(cur, tgt any) bool { return num(cur) < num(tgt) },
					effect: func(cur, _ any) any { return num(cur) + 1 },
				})
				return d
			},
			partial: true,
			current: `{"n":0}`,
			target:  `{"n":3}`,
			want:    "seq(small /n, small /n, small /n)",
		},
		{
			name:      "partial: with methods, one counts down",
			domain:    func(t testing.TB) *domain { return counters(t, true) },
			partial:   true,
			current:   `{"counters":{"a":0,"b":0,"z":5}}`,
			target:    `{"counters":{"a":3,"b":1,"z":1}}`,
			want:      "par(seq(plus_one /counters/a, plus_one /counters/a, plus_one /counters/a), plus_one /counters/b)",
			unreached: []string{"/counters/z"},
			why:       []string{"/counters/z: is 5, target 1", "counters.plus_two: condition does not hold", "counters.plus_one: condition does not hold"},
		},
		{
			name:    "partial: a bound hit is still an error",
			domain:  func(t testing.TB) *domain { return counters(t, false) },
			partial: true,
			limits:  plan.Limits{Depth: 3},
			current: `{"counters":{"a":0,"b":9}}`,
			target:  `{"counters":{"a":5,"b":1}}`,
			wantErr: []string{"depth bound (3 steps)"},
		},
		{
			name:    "partial: the tries bound is still an error",
			domain:  func(t testing.TB) *domain { return counters(t, false) },
			partial: true,
			limits:  plan.Limits{Tries: 3},
			current: `{"counters":{"a":0,"b":9}}`,
			target:  `{"counters":{"a":5,"b":1}}`,
			wantErr: []string{"tried 3 jobs"},
		},
		{
			name:    "target not an object",
			domain:  relays,
			current: `{}`,
			target:  `[1]`,
			wantErr: []string{"must be a JSON object"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.domain(t)
			cur, tgt := doc(t, tc.current), doc(t, tc.target)
			before := state.Clone(cur)
			opts := plan.Options{Strict: tc.strict, Limits: tc.limits, Partial: tc.partial}
			p, err := plan.Find(context.Background(), d.jobs, d, cur, tgt, opts)
			if !state.Equal(cur, before) {
				t.Fatal("Find modified the current state")
			}
			if tc.wantErr != nil {
				if !errors.Is(err, plan.ErrNoPlan) {
					t.Fatalf("err = %v, want ErrNoPlan", err)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error does not mention %q:\n%v", w, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := shape(p); len(p.Tasks) > 0 && got != tc.want || len(p.Tasks) == 0 && tc.want != "" {
				t.Fatalf("plan  %s\nwant  %s", got, tc.want)
			}
			checkDAG(t, p)
			checkUnreached(t, p, tc.unreached, tc.why)
			got := simulate(t, p, d, cur)
			if want := withoutUnreached(t, tgt, p); !plan.Satisfied(d.jobs, got, want, tc.strict && len(p.Unreached) == 0) || !state.Satisfies(got, want) {
				t.Fatalf("the plan's effects reach %s, not the target %s", state.Canonical(got), state.Canonical(want))
			}
			// Deterministic: the same inputs give the same plan.
			p2, err := plan.Find(context.Background(), d.jobs, d, cur, tgt, opts)
			if err != nil || shape(p2) != shape(p) || fmt.Sprint(p2.UnreachedError()) != fmt.Sprint(p.UnreachedError()) {
				t.Fatalf("second search: %v, %s, %v", err, shape(p2), p2.UnreachedError())
			}
		})
	}
}

// checkUnreached checks a plan's unreached paths, and that its
// explanation mentions each of why.
func checkUnreached(t testing.TB, p *plan.Plan, paths, why []string) {
	t.Helper()
	var got []string
	for _, st := range p.Unreached {
		got = append(got, st.Path)
	}
	if strings.Join(got, " ") != strings.Join(paths, " ") {
		t.Fatalf("unreached %q, want %q", got, paths)
	}
	err := p.UnreachedError()
	if (err == nil) != (len(paths) == 0) || err != nil && !errors.Is(err, plan.ErrPartial) {
		t.Fatalf("UnreachedError() = %v with %d unreached", err, len(paths))
	}
	for _, w := range why {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("explanation does not mention %q:\n%v", w, err)
		}
	}
}

// withoutUnreached is target without the parts p leaves unreached: what a
// partial plan must reach.
func withoutUnreached(t testing.TB, target any, p *plan.Plan) any {
	t.Helper()
	out := state.Clone(target)
	for _, st := range p.Unreached {
		ptr := state.MustPointer(st.Path)
		if _, ok := state.Get(out, ptr); ok {
			var err error
			if out, err = state.Delete(out, ptr); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

// A part no job binds is dropped before the search: left in, the search
// would try every combination of the other 30 relays before giving up
// (2^30 states), far past the tries bound.
func TestPartialUnboundCostsNoSearch(t *testing.T) {
	d := relays(t)
	cur, tgt := map[string]any{}, map[string]any{}
	for i := range 30 {
		cur[fmt.Sprintf("r%02d", i)], tgt[fmt.Sprintf("r%02d", i)] = false, true
	}
	current := map[string]any{"relays": cur}
	target := map[string]any{"relays": tgt, "lights": map[string]any{"porch": true}}
	opts := plan.Options{Partial: true, Limits: plan.Limits{Tries: 10_000}}
	p, err := plan.Find(context.Background(), d.jobs, d, current, target, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Tasks) != 30 || p.Stats.Rounds != 0 || p.Stats.Tries != 30 {
		t.Fatalf("%d tasks, stats %+v: want 30 tasks from one search trying 30 jobs", len(p.Tasks), p.Stats)
	}
	checkUnreached(t, p, []string{"/lights/porch"}, []string{"no job binds this path or a parent of it"})
}

// A counter that cannot count down, beside 20 that can: the partial
// search stops at its first dead end, where only the hopeless counter is
// unmet, instead of trying every combination of the others (3^20 states,
// far past the tries bound), and plans the 20 in a second round.
func TestPartialHopelessPlaceStopsTheSearch(t *testing.T) {
	d := counters(t, false)
	cur, tgt := map[string]any{"z": 5.0}, map[string]any{"z": 1.0}
	for i := range 20 {
		cur[fmt.Sprintf("c%02d", i)], tgt[fmt.Sprintf("c%02d", i)] = 0.0, 2.0
	}
	current, target := map[string]any{"counters": cur}, map[string]any{"counters": tgt}
	opts := plan.Options{Partial: true, Limits: plan.Limits{Tries: 10_000}}
	p, err := plan.Find(context.Background(), d.jobs, d, current, target, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Tasks) != 40 || p.Stats.Rounds != 1 || p.Stats.Tries > 200 {
		t.Fatalf("%d tasks, stats %+v: want 40 tasks, two rounds, a few tries", len(p.Tasks), p.Stats)
	}
	checkUnreached(t, p, []string{"/counters/z"}, []string{"/counters/z: is 5, target 1\n    counters.plus_one: condition does not hold"})
	// All or nothing still tries every combination: the bound.
	opts.Partial = false
	if _, err := plan.Find(context.Background(), d.jobs, d, current, target, opts); err == nil || !strings.Contains(err.Error(), "tried 10000 jobs") {
		t.Fatalf("all or nothing: %v, want the tries bound", err)
	}
}

// The rounds of a partial search share the bounds: a second round does
// not get a fresh budget.
func TestPartialRoundsShareTheBounds(t *testing.T) {
	d := counters(t, false)
	current, target := doc(t, `{"counters":{"a":0,"b":0,"z":5}}`), doc(t, `{"counters":{"a":3,"b":3,"z":1}}`)
	p, err := plan.Find(context.Background(), d.jobs, d, current, target, plan.Options{Partial: true})
	if err != nil {
		t.Fatal(err)
	}
	if p.Stats.Rounds != 1 {
		t.Fatalf("stats %+v: want one round after the first", p.Stats)
	}
	// Enough tries for either round alone, not for both.
	opts := plan.Options{Partial: true, Limits: plan.Limits{Tries: p.Stats.Tries - 1}}
	if _, err := plan.Find(context.Background(), d.jobs, d, current, target, opts); err == nil || !strings.Contains(err.Error(), "tried") {
		t.Fatalf("err = %v, want the tries bound", err)
	}
}

func TestMethodTasksSayWhy(t *testing.T) {
	d := counters(t, true)
	p, err := plan.Find(context.Background(), d.jobs, d, doc(t, `{"counters":{"a":0}}`), doc(t, `{"counters":{"a":3}}`), plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var via []string
	for _, task := range p.Tasks {
		via = append(via, strings.Join(task.Via, ">"))
	}
	want := []string{"counters.plus_two /counters/a", "counters.plus_two /counters/a", ""}
	if strings.Join(via, "|") != strings.Join(want, "|") {
		t.Fatalf("via = %q, want %q", via, want)
	}
}

func TestDeclarativeJobsCostNoCall(t *testing.T) {
	d := relays(t)
	p, err := plan.Find(context.Background(), d.jobs, d, doc(t, `{"relays":{"a":false}}`), doc(t, `{"relays":{"a":true,"b":true}}`), plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Tasks) != 2 || p.Stats.Calls != 0 || d.calls != 0 || p.Stats.Tries != 2 {
		t.Fatalf("tasks %d, stats %+v, evaluator calls %d: declarative jobs must not be asked", len(p.Tasks), p.Stats, d.calls)
	}
}

func TestTimeBound(t *testing.T) {
	d := (&domain{}).action(t, "slow.step", "/n", abi.Update, impl{
		cond:   func(any, any) bool { time.Sleep(5 * time.Millisecond); return true },
		effect: func(cur, _ any) any { return num(cur) + 1 },
	})
	_, err := plan.Find(context.Background(), d.jobs, d, doc(t, `{"n":0}`), doc(t, `{"n":-1}`), plan.Options{Limits: plan.Limits{Time: 50 * time.Millisecond}})
	if !errors.Is(err, plan.ErrNoPlan) || !strings.Contains(err.Error(), "longer than 50ms") {
		t.Fatalf("err = %v", err)
	}
}

// liveState is the executor's view of the state in tests.
type liveState struct {
	mu sync.Mutex
	s  any
}

func (l *liveState) Get(p state.Pointer) (any, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v, ok := state.Get(l.s, p)
	return state.Clone(v), ok
}

func (l *liveState) Apply(p state.Pointer, v any) (err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.s, err = state.Put(l.s, p, v)
	return err
}

func TestRunReachesTarget(t *testing.T) {
	d := counters(t, true)
	cur, tgt := doc(t, `{"counters":{"a":0,"b":0,"c":0}}`), doc(t, `{"counters":{"a":3,"b":1,"c":2}}`)
	p, err := plan.Find(context.Background(), d.jobs, d, cur, tgt, plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	live := &liveState{s: state.Clone(cur)}
	var mu sync.Mutex
	outcomes := map[plan.Outcome]int{}
	err = plan.Run(context.Background(), p, d, live, plan.RunOptions{Parallel: 4, Observer: func(_ *plan.Task, o plan.Outcome, _ error) {
		mu.Lock()
		outcomes[o]++
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !state.Satisfies(live.s, tgt) {
		t.Fatalf("after run: %v, want %v", live.s, tgt)
	}
	if outcomes[plan.Started] != 6 || outcomes[plan.Done] != 6 || len(d.ran) != 6 {
		t.Fatalf("outcomes = %v, ran %v", outcomes, d.ran)
	}
}

func TestRunFailureSkipsDependents(t *testing.T) {
	d := counters(t, false)
	d.impls["counters.plus_one"] = impl{
		cond:   d.impls["counters.plus_one"].cond,
		effect: d.impls["counters.plus_one"].effect,
		run: func(path string) error {
			if path == "/counters/a" {
				return errBoom
			}
			return nil
		},
	}
	cur, tgt := doc(t, `{"counters":{"a":0,"b":0}}`), doc(t, `{"counters":{"a":2,"b":2}}`)
	p, err := plan.Find(context.Background(), d.jobs, d, cur, tgt, plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	live := &liveState{s: state.Clone(cur)}
	var mu sync.Mutex
	skipped := 0
	err = plan.Run(context.Background(), p, d, live, plan.RunOptions{Parallel: 2, Observer: func(_ *plan.Task, o plan.Outcome, _ error) {
		if o == plan.Skipped {
			mu.Lock()
			skipped++
			mu.Unlock()
		}
	}})
	if !errors.Is(err, plan.ErrTaskFailed) || !errors.Is(err, errBoom) {
		t.Fatalf("err = %v", err)
	}
	if skipped != 1 {
		t.Fatalf("skipped = %d, want the second increment of a skipped", skipped)
	}
	if got, _ := live.Get(state.MustPointer("/counters/b")); got != 2.0 {
		t.Fatalf("b = %v: an independent branch must still run", got)
	}
}

func TestRunRechecksConditions(t *testing.T) {
	d := counters(t, false)
	cur, tgt := doc(t, `{"counters":{"a":0}}`), doc(t, `{"counters":{"a":1}}`)
	p, err := plan.Find(context.Background(), d.jobs, d, cur, tgt, plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The world moved on since planning: a is already 1.
	live := &liveState{s: doc(t, `{"counters":{"a":1}}`)}
	err = plan.Run(context.Background(), p, d, live, plan.RunOptions{})
	if !errors.Is(err, plan.ErrConditionChanged) || len(d.ran) != 0 {
		t.Fatalf("err = %v, ran %v: a task whose condition no longer holds must not run", err, d.ran)
	}
}

func TestStepTargetOverride(t *testing.T) {
	d := thermostat(t)
	p, err := plan.Find(context.Background(), d.jobs, d, doc(t, `{"room":{"temp":18,"heater":false}}`), doc(t, `{"room":{"temp":21}}`), plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(p.Tasks[0].Target); got != "true" {
		t.Fatalf("heater step target = %s, want the method's override true", got)
	}
	if got := string(p.Tasks[1].Target); got != `{"temp":21}` {
		t.Fatalf("wait step target = %s, want the target at /room", got)
	}
	var v bool
	if json.Unmarshal(p.Tasks[0].Target, &v); !v {
		t.Fatal("heater must be switched on")
	}
}

func TestRunStop(t *testing.T) {
	d := counters(t, false)
	stop := make(chan struct{})
	d.impls["counters.plus_one"] = impl{
		cond:   d.impls["counters.plus_one"].cond,
		effect: d.impls["counters.plus_one"].effect,
		run:    func(string) error { close(stop); return nil },
	}
	cur, tgt := doc(t, `{"counters":{"a":0}}`), doc(t, `{"counters":{"a":3}}`)
	p, err := plan.Find(context.Background(), d.jobs, d, cur, tgt, plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	live := &liveState{s: state.Clone(cur)}
	err = plan.Run(context.Background(), p, d, live, plan.RunOptions{Stop: stop})
	if !errors.Is(err, plan.ErrStopped) || len(d.ran) != 1 {
		t.Fatalf("err = %v, ran %v: after Stop no task may start", err, d.ran)
	}
	if got, _ := live.Get(state.MustPointer("/counters/a")); got != 1.0 {
		t.Fatalf("a = %v: the task that ran must have its effect applied", got)
	}
}

// BenchmarkFindCounters is the search alone (jobs native): counters-1000
// of bench/planner/PROBLEMS.md.
func BenchmarkFindCounters(b *testing.B) {
	d := counters(b, false)
	cur, tgt := map[string]any{}, map[string]any{}
	for i := range 1000 {
		cur[fmt.Sprintf("c%04d", i)], tgt[fmt.Sprintf("c%04d", i)] = 0.0, 2.0
	}
	current, target := map[string]any{"counters": cur}, map[string]any{"counters": tgt}
	for b.Loop() {
		if _, err := plan.Find(context.Background(), d.jobs, d, current, target, plan.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
