package plan

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/tern-iot/tern/runtime/state"
	"github.com/tern-iot/tern/sdk/abi"
)

// Runner does a job's I/O, on top of answering its planning questions.
// Run is called from several goroutines at once.
type Runner interface {
	Evaluator
	Run(ctx context.Context, j *Job, c abi.Call, st Reader) error
}

// Live is the agent's view of the current state while a plan runs.
// Implementations are safe for concurrent use.
type Live interface {
	Get(p state.Pointer) (any, bool)
	// Apply records a task's effect: v at p, or p deleted if v is nil.
	Apply(p state.Pointer, v any) error
}

// Outcome is what happened to a task.
type Outcome int

const (
	Started Outcome = iota
	Done
	Failed
	Skipped // a task it depends on failed, or its condition no longer holds
)

// Observer hears about every task; err is set for Failed and Skipped.
// It is called from the executor's goroutines and must be safe for that.
type Observer func(t *Task, o Outcome, err error)

// ErrTaskFailed wraps the failures Run returns.
var ErrTaskFailed = errors.New("plan: task failed")

// ErrConditionChanged: a task's condition no longer held when its turn
// came (the world changed since planning); the agent re-plans.
var ErrConditionChanged = errors.New("its condition no longer holds")

// RunOptions configure Run.
type RunOptions struct {
	// Parallel bounds the tasks running at once. Default 1.
	Parallel int
	// Stop, when closed, stops Run from starting more tasks (a new target
	// arrived): tasks already running finish, the rest are skipped.
	Stop <-chan struct{}
	// Observer hears about every task; nil: nobody.
	Observer Observer
}

// ErrStopped is why tasks are skipped after RunOptions.Stop was closed.
var ErrStopped = errors.New("plan: stopped before its turn")

// Run executes the plan: every task once its dependencies are done, at most
// opts.Parallel at a time, ready tasks in plan order. Before running a task
// it checks the task's condition again against the live state; after it,
// it applies the task's effect to the live state. It returns once every
// task finished or was skipped; the error joins the failures.
func Run(ctx context.Context, p *Plan, r Runner, live Live, opts RunOptions) error {
	parallel, obs := max(opts.Parallel, 1), opts.Observer
	if obs == nil {
		obs = func(*Task, Outcome, error) {}
	}
	n := len(p.Tasks)
	waiting := make([]int, n)      // unfinished dependencies
	dependents := make([][]int, n) // tasks waiting for each
	var ready []int                // runnable, in plan order
	for _, t := range p.Tasks {
		waiting[t.ID] = len(t.Deps)
		for _, d := range t.Deps {
			dependents[d] = append(dependents[d], t.ID)
		}
		if len(t.Deps) == 0 {
			ready = append(ready, t.ID)
		}
	}
	var errs []error
	fail := func(t *Task, o Outcome, err error) {
		obs(t, o, err)
		errs = append(errs, fmt.Errorf("%w: %s: %w", ErrTaskFailed, t, err))
	}
	// skip marks a task and everything after it skipped.
	var skip func(id int, why error)
	skipped := make([]bool, n)
	skip = func(id int, why error) {
		if skipped[id] {
			return
		}
		skipped[id] = true
		fail(p.Tasks[id], Skipped, why)
		for _, d := range dependents[id] {
			skip(d, fmt.Errorf("task %d it depends on did not finish", id))
		}
	}
	type outcome struct {
		id  int
		err error
	}
	results := make(chan outcome)
	running, finished := 0, 0
	for finished < n {
		for running < parallel && len(ready) > 0 {
			id := ready[0]
			ready = ready[1:]
			if err := stopReason(ctx, opts.Stop); err != nil {
				skip(id, err)
				finished++
				continue
			}
			running++
			go func() { results <- outcome{id, runTask(ctx, p.Tasks[id], r, live, obs)} }()
		}
		if running == 0 {
			// Nothing runs and nothing is ready: the rest was skipped.
			for id := range p.Tasks {
				if !skipped[id] && waiting[id] > 0 {
					skip(id, errors.New("a task it depends on did not finish"))
				}
			}
			break
		}
		o := <-results
		running--
		finished++
		t := p.Tasks[o.id]
		if o.err != nil {
			fail(t, Failed, o.err)
			for _, d := range dependents[o.id] {
				skip(d, fmt.Errorf("task %d it depends on did not finish", o.id))
			}
			continue
		}
		obs(t, Done, nil)
		for _, d := range dependents[o.id] {
			if waiting[d]--; waiting[d] == 0 && !skipped[d] {
				ready = insertSorted(ready, d)
			}
		}
	}
	return errors.Join(errs...)
}

func stopReason(ctx context.Context, stop <-chan struct{}) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-stop:
		return ErrStopped
	default:
		return nil
	}
}

func insertSorted(s []int, v int) []int {
	i, _ := slices.BinarySearch(s, v)
	return slices.Insert(s, i, v)
}

func runTask(ctx context.Context, t *Task, r Runner, live Live, obs Observer) error {
	cur, present := live.Get(t.Path)
	call := abi.Call{Job: t.Job.Spec.Name, Path: t.Path.String(), Params: t.Params, Target: t.Target}
	if present {
		call.Current = state.Canonical(cur)
	}
	res, err := try(ctx, r, t.Job, call, live)
	if err != nil {
		return fmt.Errorf("condition: %w", err)
	}
	if !res.OK {
		return ErrConditionChanged
	}
	obs(t, Started, nil)
	if err := r.Run(ctx, t.Job, call, live); err != nil {
		return err
	}
	return live.Apply(t.Path, res.Effect)
}
