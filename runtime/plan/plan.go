package plan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tern-iot/tern/runtime/state"
	"github.com/tern-iot/tern/sdk/abi"
)

// Job is a job a module offers, bound to its pattern.
type Job struct {
	Module  string
	Spec    abi.JobSpec
	Pattern state.Pattern
}

// NewJob binds spec, offered by module, to its parsed pattern.
func NewJob(module string, spec abi.JobSpec) (*Job, error) {
	p, err := state.ParsePattern(spec.Path)
	if err != nil {
		return nil, fmt.Errorf("plan: module %s: job %s: %w", module, spec.Name, err)
	}
	return &Job{Module: module, Spec: spec, Pattern: p}, nil
}

// Name is "module.job".
func (j *Job) Name() string { return j.Module + "." + j.Spec.Name }

// declarative reports whether the planner can answer a Try for this job
// without asking the module: an action whose condition always holds and
// whose effect is the target.
func (j *Job) declarative() bool {
	return !j.Spec.IsMethod() && j.Spec.Condition == abi.ConditionAlways && j.Spec.Effect == abi.EffectTarget
}

// Evaluator answers the planner's questions about jobs. It must not touch
// hardware; Find calls it from one goroutine at a time, Run from several.
type Evaluator interface {
	// Try checks j's condition for c and, when it holds, returns an
	// action's effect or a method's expansion. A job may read other parts
	// of the state through st, and only through st: Find records what is
	// read there to order the plan's tasks (see Task.Reads).
	Try(ctx context.Context, j *Job, c abi.Call, st Reader) (Result, error)
}

// Reader is the state as a job sees it while its condition and effect
// run: during Find, the state the search has reached; during Run, the live
// state.
type Reader interface {
	Get(p state.Pointer) (any, bool)
}

// Result is an Evaluator's answer.
type Result struct {
	// OK: the job's condition holds.
	OK bool
	// Effect is an action's value at the path after it ran; nil deletes
	// the path.
	Effect any
	// Steps is a method's expansion.
	Steps []Step
	// PathFree: the answer holds for every path the job binds, given the
	// same current and target values (the job did not look at its path).
	PathFree bool
}

// Step is one step of a method's expansion.
type Step struct {
	// Job is "job" (the method's own module) or "module.job".
	Job string
	// Path is where the step applies; Here means the method's own path.
	Path state.Pointer
	Here bool
	// Target, if not nil, replaces the target's value at Path for the step
	// (JSON; "null" asks for a delete).
	Target json.RawMessage
}

// DecodeTry turns a module's tern_try answer into a Result.
func DecodeTry(t abi.Try) (Result, error) {
	r := Result{OK: t.OK, PathFree: t.PathFree}
	if !t.OK {
		return r, nil
	}
	if len(t.Effect) > 0 {
		v, err := state.Parse(t.Effect)
		if err != nil {
			return Result{}, fmt.Errorf("effect: %w", err)
		}
		r.Effect = v
	}
	for i, s := range t.Tasks {
		if s.Path == abi.Here {
			r.Steps = append(r.Steps, Step{Job: s.Job, Here: true, Target: s.Target})
			continue
		}
		p, err := state.ParsePointer(s.Path)
		if err != nil {
			return Result{}, fmt.Errorf("step %d (%s): %w", i+1, s.Job, err)
		}
		if len(s.Target) > 0 {
			if _, err := state.Parse(s.Target); err != nil {
				return Result{}, fmt.Errorf("step %d (%s %s): target: %w", i+1, s.Job, s.Path, err)
			}
		}
		r.Steps = append(r.Steps, Step{Job: s.Job, Path: p, Target: s.Target})
	}
	return r, nil
}

// try asks ev about j, answering declarative jobs itself.
func try(ctx context.Context, ev Evaluator, j *Job, c abi.Call, st Reader) (Result, error) {
	if j.declarative() {
		v, err := decodeTarget(c.Target)
		return Result{OK: true, Effect: v}, err
	}
	r, err := ev.Try(ctx, j, c, st)
	if err == nil && r.OK && j.Spec.Effect == abi.EffectTarget {
		r.Effect, err = decodeTarget(c.Target)
	}
	return r, err
}

func decodeTarget(raw json.RawMessage) (any, error) {
	if len(raw) == 0 {
		return nil, errors.New("the job's effect is its target, but it has none here")
	}
	return state.Parse(raw)
}

// Task is one action applied to one path.
type Task struct {
	ID     int
	Job    *Job
	Op     abi.Op
	Path   state.Pointer
	Params map[string]string
	// Target is the target's value at Path as the job sees it (JSON; nil
	// when the target does not name the path, "null" for a delete).
	Target json.RawMessage
	// Effect is the path's value after the task, as planned (nil: deleted).
	Effect any
	// Via lists the methods that expanded into this task, outermost
	// first, as "module.method /path"; empty for a task chosen directly.
	Via []string
	// Reads are the other paths the job's condition and effect read when
	// it was planned (besides Path), in the order first read; a job that
	// read more than maxReads paths is recorded as having read the whole
	// state ("/").
	Reads []state.Pointer
	// Deps are the IDs of tasks that must finish first: every earlier
	// task that changes a path overlapping this one's Path or Reads, and
	// every earlier task that read a path overlapping this one's Path
	// (link.go).
	Deps []int
}

func (t *Task) String() string { return fmt.Sprintf("%s %s %s", t.Job.Name(), t.Op, t.Path) }

// Plan is a DAG of tasks, listed in an order that runs them correctly one
// after another.
type Plan struct {
	Tasks []*Task
	Stats Stats
	// Unreached, in a partial plan (Options.Partial), are the parts of the
	// target the plan leaves out, each with why it could not be reached,
	// sorted by path; empty when the plan reaches the whole target.
	// UnreachedError says the same as an error.
	Unreached []Stuck
}

// Stats describe a search.
type Stats struct {
	// Calls is how many times the search asked the Evaluator.
	Calls int
	// Tries counts the jobs tried, including those answered without a call.
	Tries int
	// Backtracks counts choices undone because they led nowhere.
	Backtracks int
	// States counts the distinct states visited.
	States int
	// Rounds counts the searches a partial plan took after the first
	// (each after dropping what the one before could not reach); 0 when
	// the first search found the plan.
	Rounds   int
	Duration time.Duration
}

// Limits bound the search. Zero fields take the defaults.
type Limits struct {
	// Depth bounds the steps on one search path (each chosen action or
	// method counts one). Default 10,000.
	Depth int
	// MethodDepth bounds methods expanding into methods. Default 32.
	MethodDepth int
	// Tries bounds the jobs tried in all. Default 1,000,000.
	Tries int
	// Tasks bounds the plan's size. Default 10,000.
	Tasks int
	// Time bounds the search. Default 10 s.
	Time time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.Depth == 0 {
		l.Depth = 10_000
	}
	if l.MethodDepth == 0 {
		l.MethodDepth = 32
	}
	if l.Tries == 0 {
		l.Tries = 1_000_000
	}
	if l.Tasks == 0 {
		l.Tasks = 10_000
	}
	if l.Time == 0 {
		l.Time = 10 * time.Second
	}
	return l
}

// Options configure Find.
type Options struct {
	Limits
	// Strict also removes what the target does not name: under every
	// object the target names, a key the state has and the target does not
	// must be deleted, where a job binds its path for a delete.
	Strict bool
	// MayExpand, if not nil, is asked before a method's step is bound to
	// a job of another module; an error refuses that step (it is how a
	// device keeps a module from actuating, through another module's
	// jobs, hardware it is not granted). Nil: any job may be expanded into.
	MayExpand func(method, job *Job) error
	// Partial: when part of the target cannot be reached, plan the rest
	// and say in Plan.Unreached what was left out and why, instead of
	// failing with a *NoPlanError for the whole target. A bound hit
	// (depth, tries, tasks, time) is still an error. See the package
	// documentation.
	Partial bool
}

// Op is the change a path needs given whether it is present and its
// target (JSON; "null" deletes).
func Op(present bool, target json.RawMessage) abi.Op {
	switch {
	case string(target) == "null":
		return abi.Delete
	case !present:
		return abi.Create
	}
	return abi.Update
}

// sortJobs orders candidates as the search tries them: methods before
// actions, then by name.
func sortJobs(jobs []*Job) []*Job {
	out := slices.Clone(jobs)
	slices.SortStableFunc(out, func(a, b *Job) int {
		if am, bm := a.Spec.IsMethod(), b.Spec.IsMethod(); am != bm {
			if am {
				return -1
			}
			return 1
		}
		switch an, bn := a.Name(), b.Name(); {
		case an < bn:
			return -1
		case an > bn:
			return 1
		}
		return 0
	})
	return out
}
