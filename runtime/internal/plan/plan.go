package plan

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tern-iot/tern/runtime/state"
	"github.com/tern-iot/tern/sdk"
)

// Job is a job a module offers, bound to its pattern.
type Job struct {
	Module  string
	Spec    sdk.JobSpec
	Pattern state.Pattern
}

// Name is "module.job".
func (j *Job) Name() string { return j.Module + "." + j.Spec.Name }

// Evaluator answers a job's planning questions. It must not touch hardware.
type Evaluator interface {
	Condition(ctx context.Context, j *Job, c sdk.Call) (bool, error)
	// Effect returns the path's value after the job; nil deletes the path.
	Effect(ctx context.Context, j *Job, c sdk.Call) (any, error)
}

// Task is one job applied to one path.
type Task struct {
	ID     int
	Job    *Job
	Op     sdk.Op
	Path   state.Pointer
	Params map[string]string
	// Target is the target's value at Path (nil for a delete).
	Target any
	// Deps are the IDs of tasks that must finish first.
	Deps []int
}

func (t *Task) String() string { return fmt.Sprintf("%s %s %s", t.Job.Name(), t.Op, t.Path) }

// Plan is a DAG of tasks, in the order they were found.
type Plan struct {
	Tasks []*Task
}

// Limits bound the search.
type Limits struct {
	// Passes bounds how many times the target is walked. Default 16.
	Passes int
	// Tasks bounds the plan's size. Default 1024.
	Tasks int
	// Time bounds the search. Default 10 s.
	Time time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.Passes == 0 {
		l.Passes = 16
	}
	if l.Tasks == 0 {
		l.Tasks = 1024
	}
	if l.Time == 0 {
		l.Time = 10 * time.Second
	}
	return l
}

// ErrNoPlan means no sequence of the available jobs reaches the target.
// The error's text says, per path, what was tried.
var ErrNoPlan = errors.New("plan: no plan reaches the target")

// Op is the change a path needs: create, update or delete.
func Op(current any, present bool, target any) sdk.Op {
	switch {
	case target == nil:
		return sdk.Delete
	case !present:
		return sdk.Create
	}
	return sdk.Update
}

// met reports whether the state's value at a path meets the target's.
func met(current any, present bool, target any) bool {
	if target == nil {
		return !present
	}
	return present && state.Satisfies(current, target)
}

// Find searches for a plan from current to target. Neither is modified.
func Find(ctx context.Context, jobs []*Job, ev Evaluator, current, target any, lim Limits) (*Plan, error) {
	lim = lim.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, lim.Time)
	defer cancel()
	jobs = sorted(jobs)
	s := state.Clone(current)
	if s == nil {
		s = map[string]any{}
	}
	p := &Plan{}
	seen := map[uint64]bool{state.Hash(s): true}
	for pass := 0; ; pass++ {
		if state.Satisfies(s, target) {
			link(p)
			return p, nil
		}
		if pass == lim.Passes {
			return nil, fmt.Errorf("%w: still unmet after %d passes: %s", ErrNoPlan, pass, paths(state.Unsatisfied(s, target)))
		}
		why := map[string][]string{}
		progress := false
		var err error
		state.Walk(target, func(ptr state.Pointer, tv any) bool {
			if err != nil {
				return false
			}
			cur, present := state.Get(s, ptr)
			if met(cur, present, tv) {
				return false
			}
			op := Op(cur, present, tv)
			bound := false
			for _, j := range jobs {
				params, ok := j.Pattern.Match(ptr)
				if !ok {
					continue
				}
				bound = true
				if !j.Spec.Op.Matches(op) {
					continue
				}
				if err = ctx.Err(); err != nil {
					return false
				}
				call := sdk.Call{Job: j.Spec.Name, Path: ptr.String(), Params: params}
				if call.Current, err = raw(cur, present); err != nil {
					return false
				}
				if call.Target, err = raw(tv, true); err != nil {
					return false
				}
				ok, cerr := ev.Condition(ctx, j, call)
				if cerr != nil {
					why[ptr.String()] = append(why[ptr.String()], fmt.Sprintf("%s: condition failed: %v", j.Name(), cerr))
					continue
				}
				if !ok {
					why[ptr.String()] = append(why[ptr.String()], j.Name()+": condition does not hold")
					continue
				}
				v, eerr := ev.Effect(ctx, j, call)
				if eerr != nil {
					why[ptr.String()] = append(why[ptr.String()], fmt.Sprintf("%s: effect failed: %v", j.Name(), eerr))
					continue
				}
				if s, err = apply(s, ptr, v); err != nil {
					err = fmt.Errorf("plan: effect of %s on %s: %w", j.Name(), ptr, err)
					return false
				}
				p.Tasks = append(p.Tasks, &Task{ID: len(p.Tasks), Job: j, Op: op, Path: ptr, Params: params, Target: state.Clone(tv)})
				if len(p.Tasks) > lim.Tasks {
					err = fmt.Errorf("%w: more than %d tasks", ErrNoPlan, lim.Tasks)
				}
				progress = true
				return false
			}
			if bound && len(why[ptr.String()]) == 0 {
				why[ptr.String()] = append(why[ptr.String()], "no job handles "+string(op))
			}
			// No job binds this path itself: look deeper.
			return !bound
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w: search exceeded %v", ErrNoPlan, lim.Time)
			}
			return nil, err
		}
		if !progress {
			return nil, noPlan(s, target, why)
		}
		h := state.Hash(s)
		if seen[h] {
			return nil, fmt.Errorf("%w: the jobs' effects cycle without reaching the target", ErrNoPlan)
		}
		seen[h] = true
	}
}

func noPlan(s, target any, why map[string][]string) error {
	var b strings.Builder
	for _, ptr := range state.Unsatisfied(s, target) {
		// Unsatisfied reports leaves; the reasons may be at an ancestor.
		var reasons []string
		for q := ptr; len(reasons) == 0; q = q.Parent() {
			reasons = why[q.String()]
			if len(q) == 0 {
				break
			}
		}
		if len(reasons) == 0 {
			reasons = []string{"no job binds this path"}
		}
		fmt.Fprintf(&b, "\n  %s: %s", ptr, strings.Join(reasons, "; "))
	}
	return fmt.Errorf("%w:%s", ErrNoPlan, b.String())
}

func paths(ps []state.Pointer) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

func apply(s any, ptr state.Pointer, v any) (any, error) {
	if v == nil {
		return state.Delete(s, ptr)
	}
	return state.Set(s, ptr, state.Clone(v))
}

// link adds the DAG's edges: each task waits for the earlier tasks whose
// paths overlap its own.
func link(p *Plan) {
	for i, t := range p.Tasks {
		for _, u := range p.Tasks[:i] {
			if state.Overlaps(t.Path, u.Path) {
				t.Deps = append(t.Deps, u.ID)
			}
		}
	}
}

func sorted(jobs []*Job) []*Job {
	out := append([]*Job(nil), jobs...)
	sort.SliceStable(out, func(i, k int) bool { return out[i].Name() < out[k].Name() })
	return out
}
