package plan_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/tern-iot/tern/runtime/internal/plan"
	"github.com/tern-iot/tern/runtime/state"
	"github.com/tern-iot/tern/sdk"
)

// fakeJob is a job implemented natively, as a module would in wasm.
type fakeJob struct {
	cond   func(c sdk.Call) bool
	effect func(c sdk.Call) any // nil: the target's value
	run    func(c sdk.Call) error
}

type fakes struct {
	mu   sync.Mutex
	jobs map[string]fakeJob
	ran  []string
}

func (f *fakes) Condition(_ context.Context, j *plan.Job, c sdk.Call) (bool, error) {
	if fj := f.jobs[j.Name()]; fj.cond != nil {
		return fj.cond(c), nil
	}
	return true, nil
}

func (f *fakes) Effect(_ context.Context, j *plan.Job, c sdk.Call) (any, error) {
	if fj := f.jobs[j.Name()]; fj.effect != nil {
		return fj.effect(c), nil
	}
	v, _ := state.Parse(c.Target)
	return v, nil
}

func (f *fakes) Run(_ context.Context, j *plan.Job, c sdk.Call) error {
	f.mu.Lock()
	f.ran = append(f.ran, j.Name()+" "+c.Path)
	f.mu.Unlock()
	if fj := f.jobs[j.Name()]; fj.run != nil {
		return fj.run(c)
	}
	return nil
}

func job(t *testing.T, module, name, path string, op sdk.Op) *plan.Job {
	t.Helper()
	p, err := state.ParsePattern(path)
	if err != nil {
		t.Fatal(err)
	}
	return &plan.Job{Module: module, Spec: sdk.JobSpec{Name: name, Path: path, Op: op}, Pattern: p}
}

func doc(t *testing.T, s string) any {
	t.Helper()
	v, err := state.Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func num(raw json.RawMessage) float64 {
	var f float64
	json.Unmarshal(raw, &f)
	return f
}

// describe renders a plan as "task [deps]" lines, like Mahler's test
// helpers render sequences and parallel branches.
func describe(p *plan.Plan) []string {
	var out []string
	for _, t := range p.Tasks {
		out = append(out, fmt.Sprintf("%s %s %v", t.Job.Name(), t.Path, t.Deps))
	}
	return out
}

func TestFind(t *testing.T) {
	counterInc := fakeJob{
		cond:   func(c sdk.Call) bool { return num(c.Current) < num(c.Target) },
		effect: func(c sdk.Call) any { return num(c.Current) + 1 },
	}
	for _, tc := range []struct {
		name            string
		jobs            []*plan.Job
		fakes           map[string]fakeJob
		current, target string
		want            []string
		wantErr         string
	}{
		{
			name:    "relays switch in parallel",
			jobs:    []*plan.Job{job(t, "relay", "set", "/relays/:name", sdk.Any)},
			current: `{"relays":{"heater":false,"fan":false,"lamp":true}}`,
			target:  `{"relays":{"heater":true,"fan":true}}`,
			want:    []string{"relay.set /relays/fan []", "relay.set /relays/heater []"},
		},
		{
			name:    "already there: empty plan",
			jobs:    []*plan.Job{job(t, "relay", "set", "/relays/:name", sdk.Any)},
			current: `{"relays":{"heater":true}}`,
			target:  `{"relays":{"heater":true}}`,
			want:    nil,
		},
		{
			name:    "counter counts up in sequence",
			jobs:    []*plan.Job{job(t, "counter", "inc", "/counters/:c", sdk.Any)},
			fakes:   map[string]fakeJob{"counter.inc": counterInc},
			current: `{"counters":{"a":0,"b":1}}`,
			target:  `{"counters":{"a":2,"b":2}}`,
			want:    []string{"counter.inc /counters/a []", "counter.inc /counters/b []", "counter.inc /counters/a [0]"},
		},
		{
			name:    "create only where the job binds create",
			jobs:    []*plan.Job{job(t, "relay", "add", "/relays/:name", sdk.Create), job(t, "relay", "switch", "/relays/:name", sdk.Update)},
			current: `{"relays":{"heater":false}}`,
			target:  `{"relays":{"heater":true,"fan":true}}`,
			want:    []string{"relay.add /relays/fan []", "relay.switch /relays/heater []"},
		},
		{
			name:    "merge-patch delete",
			jobs:    []*plan.Job{job(t, "svc", "remove", "/services/:s", sdk.Delete)},
			current: `{"services":{"old":{"on":true},"web":{"on":true}}}`,
			target:  `{"services":{"old":null}}`,
			want:    []string{"svc.remove /services/old []"},
		},
		{
			name:    "no job binds the path",
			jobs:    []*plan.Job{job(t, "relay", "set", "/relays/:name", sdk.Any)},
			current: `{}`,
			target:  `{"lights":{"porch":true}}`,
			wantErr: "/lights/porch: no job binds this path",
		},
		{
			name:    "condition does not hold",
			jobs:    []*plan.Job{job(t, "relay", "set", "/relays/:name", sdk.Any)},
			fakes:   map[string]fakeJob{"relay.set": {cond: func(sdk.Call) bool { return false }}},
			current: `{}`,
			target:  `{"relays":{"heater":true}}`,
			wantErr: "/relays/heater: relay.set: condition does not hold",
		},
		{
			name:    "op not handled",
			jobs:    []*plan.Job{job(t, "relay", "set", "/relays/:name", sdk.Update)},
			current: `{}`,
			target:  `{"relays":{"heater":true}}`,
			wantErr: "/relays/heater: no job handles create",
		},
		{
			name:    "effects that cycle",
			jobs:    []*plan.Job{job(t, "flip", "flip", "/x", sdk.Any)},
			fakes:   map[string]fakeJob{"flip.flip": {effect: func(c sdk.Call) any { return num(c.Current) * -1 }}},
			current: `{"x":1}`,
			target:  `{"x":2}`,
			wantErr: "cycle",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakes{jobs: tc.fakes}
			cur, tgt := doc(t, tc.current), doc(t, tc.target)
			before := state.Clone(cur)
			p, err := plan.Find(context.Background(), tc.jobs, f, cur, tgt, plan.Limits{})
			if !state.Equal(cur, before) {
				t.Fatal("Find modified the current state")
			}
			if tc.wantErr != "" {
				if !errors.Is(err, plan.ErrNoPlan) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want ErrNoPlan mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := describe(p); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			// Deterministic: the same inputs give the same plan.
			p2, _ := plan.Find(context.Background(), tc.jobs, f, cur, tgt, plan.Limits{})
			if strings.Join(describe(p2), "\n") != strings.Join(describe(p), "\n") {
				t.Fatal("second search gave another plan")
			}
		})
	}
}

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
	if v == nil {
		l.s, err = state.Delete(l.s, p)
	} else {
		l.s, err = state.Set(l.s, p, v)
	}
	return err
}

func TestRunReachesTarget(t *testing.T) {
	jobs := []*plan.Job{job(t, "counter", "inc", "/counters/:c", sdk.Any)}
	f := &fakes{jobs: map[string]fakeJob{"counter.inc": {
		cond:   func(c sdk.Call) bool { return num(c.Current) < num(c.Target) },
		effect: func(c sdk.Call) any { return num(c.Current) + 1 },
	}}}
	cur, tgt := doc(t, `{"counters":{"a":0,"b":0,"c":0}}`), doc(t, `{"counters":{"a":3,"b":1,"c":2}}`)
	p, err := plan.Find(context.Background(), jobs, f, cur, tgt, plan.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	live := &liveState{s: state.Clone(cur)}
	var mu sync.Mutex
	outcomes := map[plan.Outcome]int{}
	err = plan.Run(context.Background(), p, f, live, 4, func(_ *plan.Task, o plan.Outcome, _ error) {
		mu.Lock()
		outcomes[o]++
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if !state.Satisfies(live.s, tgt) {
		t.Fatalf("after run: %v, want %v", live.s, tgt)
	}
	if outcomes[plan.Started] != 6 || outcomes[plan.Done] != 6 {
		t.Fatalf("outcomes = %v", outcomes)
	}
}

func TestRunFailureSkipsDependents(t *testing.T) {
	jobs := []*plan.Job{job(t, "counter", "inc", "/counters/:c", sdk.Any)}
	f := &fakes{jobs: map[string]fakeJob{"counter.inc": {
		cond:   func(c sdk.Call) bool { return num(c.Current) < num(c.Target) },
		effect: func(c sdk.Call) any { return num(c.Current) + 1 },
		run: func(c sdk.Call) error {
			if c.Path == "/counters/a" {
				return errors.New("bus error")
			}
			return nil
		},
	}}}
	cur, tgt := doc(t, `{"counters":{"a":0,"b":0}}`), doc(t, `{"counters":{"a":2,"b":2}}`)
	p, err := plan.Find(context.Background(), jobs, f, cur, tgt, plan.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	live := &liveState{s: state.Clone(cur)}
	var mu sync.Mutex
	skipped := 0
	err = plan.Run(context.Background(), p, f, live, 2, func(_ *plan.Task, o plan.Outcome, _ error) {
		if o == plan.Skipped {
			mu.Lock()
			skipped++
			mu.Unlock()
		}
	})
	if !errors.Is(err, plan.ErrTaskFailed) || !strings.Contains(err.Error(), "bus error") {
		t.Fatalf("err = %v", err)
	}
	if skipped != 1 {
		t.Fatalf("skipped = %d, want the second increment of a skipped", skipped)
	}
	if got, _ := live.Get(state.MustPointer("/counters/b")); got != 2.0 {
		t.Fatalf("b = %v: an independent branch must still run", got)
	}
}
