package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tern-iot/tern/runtime/internal/wasmhost"
	"github.com/tern-iot/tern/runtime/layer"
	"github.com/tern-iot/tern/runtime/plan"
	"github.com/tern-iot/tern/runtime/state"
)

// Preview is what the agent would do with a candidate target, found by
// Agent.Preview without doing it.
type Preview struct {
	// Converged: the live state meets the candidate already; nothing
	// would run.
	Converged bool
	// Plan is the plan that reaches the candidate, nil when Converged or
	// when there is none.
	Plan *plan.Plan
	// Err says why there is no plan: a *plan.NoPlanError (errors.Is
	// plan.ErrNoPlan), or ErrUnhandled when the candidate names paths
	// no loaded module senses or sets. Nil when Converged or Plan is set.
	Err error
	// Unreached lists the parts of the candidate the plan leaves
	// unreached (a partial plan; Plan.UnreachedError says why).
	Unreached []string
	// State is the live state the preview planned from.
	State json.RawMessage
	// Took is the time the agent's loop spent on the preview (reading
	// the state and planning), not the wait for the loop.
	Took time.Duration
}

// ErrUnhandled means the candidate names paths no loaded module senses or
// sets, so no plan can reach them, and the agent could not tell they hold.
var ErrUnhandled = errors.New("runtime: no loaded module senses or sets part of the target")

// unhandledError names the paths of ErrUnhandled.
type unhandledError struct{ paths string }

func (e unhandledError) Error() string {
	return "no loaded module senses or sets " + e.paths + "; release a module that handles them, or leave them out of the target"
}

func (e unhandledError) Is(target error) bool { return target == ErrUnhandled }

// previewRequest hands a candidate to the agent's loop.
type previewRequest struct {
	target any
	done   chan Preview // buffered: the loop never waits for the caller
}

// Preview plans target (a JSON object, the whole target the agent would
// pursue), with the conditional layers the agent holds laid over it as
// they are active now, from the live state, as the agent would plan it
// were target the one it held, with the same jobs and options, and returns the plan
// or why there is none. It changes nothing: nothing runs, nothing is
// stored, no event is sent, and the modules' answers while planning
// count against no rollback. It runs on the agent's loop, between steps,
// as plans do (the modules answer one planning question at a time), so
// it waits while a plan runs or a module installs: ctx bounds the wait,
// and Preview then returns ctx's error. The agent must be running (Run).
func (a *Agent) Preview(ctx context.Context, target json.RawMessage) (Preview, error) {
	v, err := state.Parse(target)
	if err == nil {
		if _, ok := v.(map[string]any); !ok {
			err = ErrBadTarget
		}
	}
	if err != nil {
		return Preview{}, fmt.Errorf("%w: %v", ErrBadTarget, err)
	}
	req := previewRequest{target: v, done: make(chan Preview, 1)}
	select {
	case a.previews <- req:
	case <-ctx.Done():
		return Preview{}, fmt.Errorf("runtime: preview: the agent stayed busy (a plan running, a module installing): %w", ctx.Err())
	}
	select {
	case p := <-req.done:
		return p, nil
	case <-ctx.Done():
		return Preview{}, fmt.Errorf("runtime: preview: planning took too long: %w", ctx.Err())
	}
}

// previewNow is Preview on the loop's goroutine.
func (a *Agent) previewNow(ctx context.Context, req previewRequest) Preview {
	a.mu.Lock()
	current := state.Clone(a.current)
	layers := a.lay.layers
	a.mu.Unlock()
	if len(layers) > 0 {
		// The target's layers (held with the target, of every scope) lie
		// over the candidate as they would over it pushed: those active now.
		req.target = layer.Evaluate(layers, a.opts.Facts, a.opts.Clock()).Apply(req.target)
	}
	p := Preview{State: state.Canonical(current)}
	// The same questions check and converge ask, in the same order.
	sat := plan.Satisfied(a.set.jobs, current, req.target, a.opts.Strict)
	if paths, more := unhandled(a.set.mods, req.target); len(paths) > 0 {
		msg := strings.Join(paths, ", ")
		if more > 0 {
			msg += fmt.Sprintf(" and %d more paths", more)
		}
		p.Err = unhandledError{msg}
		return p
	}
	if sat {
		p.Converged = true
		return p
	}
	// Without events or outcomes: what a module says while previewing
	// is the operator's to read, not a reason to roll it back.
	ev := evaluator{mods: a.set.module}
	found, err := plan.Find(wasmhost.WithPlanTime(ctx, time.Now()), a.set.jobs, ev, current, req.target,
		plan.Options{Limits: a.opts.Limits, Strict: a.opts.Strict, MayExpand: a.set.mayExpand, Partial: !a.opts.AllOrNothing})
	if err != nil {
		p.Err = err
		return p
	}
	for _, u := range found.Unreached {
		p.Unreached = append(p.Unreached, u.Path)
	}
	if len(found.Tasks) == 0 && len(found.Unreached) > 0 {
		// Nothing would run: no plan reaches the candidate, as the agent
		// reports it (plan.failed), with the same explanation.
		p.Err = &plan.NoPlanError{Places: found.Unreached}
		return p
	}
	p.Plan = found
	return p
}
