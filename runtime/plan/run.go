package plan

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/tern-iot/tern/runtime/state"
	"github.com/tern-iot/tern/sdk"
)

// Runner does a job's I/O, on top of answering its planning questions.
// Run is called from several goroutines at once.
type Runner interface {
	Evaluator
	Run(ctx context.Context, j *Job, c sdk.Call) error
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
// opts.Parallel at a time. Before running a task it checks the task's
// condition again against the live state; after it, it applies the task's
// effect to the live state. It returns once every task finished or was
// skipped; the error joins the failures.
func Run(ctx context.Context, p *Plan, r Runner, live Live, opts RunOptions) error {
	parallel, obs := max(opts.Parallel, 1), opts.Observer
	if obs == nil {
		obs = func(*Task, Outcome, error) {}
	}
	done := make([]chan struct{}, len(p.Tasks))
	ok := make([]bool, len(p.Tasks))
	for i := range done {
		done[i] = make(chan struct{})
	}
	sem := make(chan struct{}, parallel)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(t *Task, o Outcome, err error) {
		obs(t, o, err)
		mu.Lock()
		errs = append(errs, fmt.Errorf("%w: %s: %w", ErrTaskFailed, t, err))
		mu.Unlock()
	}
	stopped := func() bool {
		select {
		case <-opts.Stop:
			return true
		default:
			return false
		}
	}
	for _, t := range p.Tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[t.ID])
			for _, d := range t.Deps {
				<-done[d]
				if !ok[d] {
					fail(t, Skipped, fmt.Errorf("task %d it depends on did not finish", d))
					return
				}
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				fail(t, Skipped, ctx.Err())
				return
			case <-opts.Stop:
				fail(t, Skipped, ErrStopped)
				return
			}
			defer func() { <-sem }()
			if stopped() {
				fail(t, Skipped, ErrStopped)
				return
			}
			if err := runTask(ctx, t, r, live, obs); err != nil {
				fail(t, Failed, err)
				return
			}
			ok[t.ID] = true
			obs(t, Done, nil)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func runTask(ctx context.Context, t *Task, r Runner, live Live, obs Observer) error {
	cur, present := live.Get(t.Path)
	call := sdk.Call{Job: t.Job.Spec.Name, Path: t.Path.String(), Params: t.Params, Target: t.Target}
	if present {
		call.Current = state.Canonical(cur)
	}
	res, _, err := try(ctx, r, t.Job, call)
	if err != nil {
		return fmt.Errorf("condition: %w", err)
	}
	if !res.OK {
		return ErrConditionChanged
	}
	obs(t, Started, nil)
	if err := r.Run(ctx, t.Job, call); err != nil {
		return err
	}
	return live.Apply(t.Path, res.Effect)
}
