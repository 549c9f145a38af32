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

// Run executes the plan: every task once its dependencies are done, at most
// parallel at a time. Before running a task it checks the task's condition
// again against the live state; after it, it applies the task's effect to
// the live state. It returns once every task finished or was skipped; the
// error joins the failures.
func Run(ctx context.Context, p *Plan, r Runner, live Live, parallel int, obs Observer) error {
	if parallel < 1 {
		parallel = 1
	}
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
			}
			defer func() { <-sem }()
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
	call := sdk.Call{Job: t.Job.Spec.Name, Path: t.Path.String(), Params: t.Params}
	var err error
	if call.Current, err = raw(cur, present); err != nil {
		return err
	}
	if call.Target, err = raw(t.Target, true); err != nil {
		return err
	}
	holds, err := r.Condition(ctx, t.Job, call)
	if err != nil {
		return fmt.Errorf("condition: %w", err)
	}
	if !holds {
		return errors.New("condition no longer holds")
	}
	obs(t, Started, nil)
	if err := r.Run(ctx, t.Job, call); err != nil {
		return err
	}
	v, err := r.Effect(ctx, t.Job, call)
	if err != nil {
		return fmt.Errorf("effect: %w", err)
	}
	return live.Apply(t.Path, v)
}
