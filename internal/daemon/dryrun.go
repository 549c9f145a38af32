package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/runtime/plan"
	"github.com/tern-iot/tern/runtime/store"
)

// A dry-run (tern push --dry-run; docs/mqtt.md, Dry-run) plans a
// candidate target on the device's live state and answers with the plan
// or why there is none. It stores nothing and runs nothing: the candidate
// is combined with the sources the combiner stored, read from the store,
// not through the combiner, which only feed touches.

// Bounds of the dry-runs a device answers: a burst of dryRunBurst, then
// one every dryRunEvery. A dry-run of the fleet asks each device once;
// a flood of requests, even signed ones, must not keep the agent's loop
// planning previews instead of its own work. Requests over the bound are
// dropped, logged once per burst, and tern counts the device as not
// answering.
const (
	dryRunBurst = 4
	dryRunEvery = 2 * time.Second
	// dryRunWait bounds the wait for the agent's loop (a plan running, a
	// module installing): past it the device answers busy.
	dryRunWait = 10 * time.Second
	// dryRunDuty bounds the share of the loop's time previews take: a
	// preview that took the loop d (up to the planner's time bound, 10 s
	// by default) is followed by (dryRunDuty-1)×d without one, so a
	// pathological candidate asked again and again still leaves the loop
	// to its own work four fifths of the time. A request that comes in
	// that spell waits for its end, up to dryRunWait; past that it is
	// dropped. (Dropping every request in the spell lost the second of
	// two dry-runs asked one after the other on a busy machine: 65 of
	// 1,000 devices never answered it.)
	dryRunDuty = 5
)

// dryRunner answers dry-run requests; dryRuns runs it.
type dryRunner struct {
	dev    *fleet.Device
	st     store.Store
	order  []string // the device's scopes, lowest precedence first
	trust  signing.Trust
	agent  *runtime.Agent
	log    *slog.Logger
	tokens float64
	last   time.Time
	quiet  time.Time // no preview before then (dryRunDuty)
	told   bool      // the drop of the current burst was logged
}

// dryRuns answers the dry-run requests dev receives until ctx is done.
func dryRuns(ctx context.Context, dev *fleet.Device, st store.Store, device string, groups []string, trust signing.Trust, a *runtime.Agent, log *slog.Logger) {
	r := &dryRunner{dev: dev, st: st, order: fleet.Scopes(device, groups), trust: trust, agent: a, log: log, tokens: dryRunBurst, last: time.Now()}
	for {
		select {
		case <-ctx.Done():
			return
		case <-dev.DryRunsWaiting():
			for _, req := range dev.TakeDryRuns() {
				if !r.allow(time.Now()) {
					continue
				}
				if wait := time.Until(r.quiet); wait > 0 {
					select {
					case <-time.After(wait):
					case <-ctx.Done():
						return
					}
				}
				ans, took := r.answer(ctx, req)
				r.quiet = time.Now().Add((dryRunDuty - 1) * took)
				if err := dev.AnswerDryRun(ctx, ans); err != nil {
					log.Warn("dry-run answer not sent", "id", req.ID, "err", err)
					continue
				}
				log.Info("dry-run answered", "id", req.ID, "scope", req.Scope, "version", req.Version, "outcome", ans.Outcome, "tasks", len(ans.Tasks)+ans.MoreTasks, "reason", ans.Reason)
			}
		}
	}
}

// allow spends a token of the rate bound, or says the request is
// dropped: over the rate, or due after the duty spell (quiet) ends more
// than dryRunWait from now.
func (r *dryRunner) allow(now time.Time) bool {
	r.tokens = min(dryRunBurst, r.tokens+now.Sub(r.last).Seconds()/dryRunEvery.Seconds())
	r.last = now
	if r.tokens >= 1 && r.quiet.Sub(now) <= dryRunWait {
		r.tokens--
		r.told = false
		return true
	}
	if !r.told {
		r.told = true
		r.log.Warn("dry-run requests dropped: more than the rate bound; they are not answered", "burst", dryRunBurst, "every", dryRunEvery, "quiet_until", r.quiet)
	}
	return false
}

// answer plans the request's candidate and says what would happen.
// took is the time the agent's loop spent on it (0 when it did not plan).
func (r *dryRunner) answer(ctx context.Context, req fleet.ScopedDryRun) (ans fleet.DryRunAnswer, took time.Duration) {
	_, held := r.agent.Target()
	ans = fleet.DryRunAnswer{ID: req.ID, Scope: req.Scope, Version: req.Version, TargetVersion: held, Time: time.Now().UTC()}
	refuse := func(err error) (fleet.DryRunAnswer, time.Duration) {
		ans.Outcome, ans.Reason, ans.Why = fleet.DryRunRefused, err.Error(), err.Error()
		return ans, took
	}
	if len(r.trust) > 0 {
		if err := req.Verify(req.Scope, r.trust); err != nil {
			return refuse(fmt.Errorf("dry-run refused: %w", err))
		}
	}
	doc, err := r.candidate(req)
	if err != nil {
		return refuse(err)
	}
	pctx, cancel := context.WithTimeout(ctx, dryRunWait)
	defer cancel()
	p, err := r.agent.Preview(pctx, doc)
	took = p.Took
	switch {
	case err != nil && pctx.Err() != nil && ctx.Err() == nil:
		ans.Outcome, ans.Reason, ans.Why = fleet.DryRunBusy, fmt.Sprintf("the agent stayed busy for %v (a plan running, a module installing); ask again", dryRunWait), err.Error()
	case err != nil:
		return refuse(err)
	case p.Converged:
		ans.Outcome = fleet.DryRunConverged
	case p.Plan != nil:
		ans.Outcome = fleet.DryRunChange
		for _, t := range p.Plan.Tasks {
			ans.Tasks = append(ans.Tasks, fleet.DryRunTask{Job: t.Job.Name(), Op: string(t.Op), Path: t.Path.String()})
		}
		ans.Unreached = p.Unreached
		if perr := p.Plan.UnreachedError(); perr != nil {
			ans.Reason, ans.Why = reasonOf(perr), perr.Error()
		}
	default:
		ans.Outcome, ans.Reason, ans.Why = fleet.DryRunCannot, reasonOf(p.Err), p.Err.Error()
	}
	return ans, took
}

// candidate is the target the device would pursue were req's candidate
// pushed on req's scope: its sources as stored, with the scope's
// replaced. A candidate the device would refuse as a push (an older
// version, a retired one, the version held with another target) is
// refused here too, with the words of the refusal.
func (r *dryRunner) candidate(req fleet.ScopedDryRun) (json.RawMessage, error) {
	known := false
	for _, s := range r.order {
		known = known || s == req.Scope
	}
	if !known {
		return nil, fmt.Errorf("dry-run for %s, which is not this device nor one of its groups", req.Scope)
	}
	sources := map[string]source{}
	b, err := r.st.Get(keySources)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("reading target sources: %w", err)
	default:
		if err := json.Unmarshal(b, &sources); err != nil {
			return nil, fmt.Errorf("stored target sources are corrupt: %v", err)
		}
	}
	held := sources[req.Scope]
	switch {
	case held.Retired != 0 && req.Version >= held.Retired:
		return nil, fmt.Errorf("%s version %d would be refused: versions from %d up were retired (tern push --replaces); use a version below %d", req.Scope, req.Version, held.Retired, held.Retired)
	case req.Version < held.Version:
		return nil, fmt.Errorf("%s version %d would be refused: older than the version %d held; use a version above %d (tern push's default, the time in milliseconds, is)", req.Scope, req.Version, held.Version, held.Version)
	case req.Version == held.Version && !sameDocument(req.Target, held.Target):
		return nil, fmt.Errorf("%s version %d would be refused: version %d is held with a different target; use a version above %d", req.Scope, req.Version, held.Version, held.Version)
	}
	targets := make([]json.RawMessage, len(r.order))
	for i, s := range r.order {
		targets[i] = sources[s].Target
		if s == req.Scope {
			targets[i] = req.Target
		}
	}
	return fleet.CombineTargets(targets...)
}

// reasonOf says why there is no plan in words that are the same on every
// device with the same problem: the planner's explanation without the
// values this device holds, so that tern groups devices by it. A reason
// a module gives may still name a value; the whole explanation is in the
// answer's "why".
func reasonOf(err error) string {
	var np *plan.NoPlanError
	var pe *plan.PartialError
	var b strings.Builder
	var places []plan.Stuck
	switch {
	case errors.As(err, &np):
		b.WriteString("no plan")
		if np.Bound != "" {
			b.WriteString(": " + np.Bound)
		}
		places = np.Places
	case errors.As(err, &pe):
		b.WriteString("part of the target cannot be reached")
		places = pe.Places
	default:
		return firstLine(err.Error())
	}
	for i, p := range places {
		sep := "; "
		if i == 0 {
			sep = ": "
		}
		fmt.Fprintf(&b, "%s%s to %s", sep, p.Path, p.Target)
		if len(p.Tried) == 0 {
			b.WriteString(" (no job binds it)")
		}
		for j, a := range p.Tried {
			if j == 0 {
				b.WriteString(" (")
			} else {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s: %s", a.Job, firstLine(a.Why))
			if j == len(p.Tried)-1 {
				b.WriteString(")")
			}
		}
	}
	return b.String()
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
