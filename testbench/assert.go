package testbench

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/tern-iot/tern/fleet"
	"reflect"
	"slices"
	"strings"
	"time"
)

// judge checks assertions against what the devices reported (the
// observer) and what the operator pushed.
type judge struct {
	obs    *observer
	agents *roster
	pushed *pushed
	log    *narrator       // for the time
	op     *fleet.Operator // reads job statuses, as tern job status does
	// rollouts are the rollouts the timeline started.
	rollouts *rollouts
}

// check evaluates an assertion, polling until it holds or its time is up.
func (j *judge) check(ctx context.Context, a *Assertion) AssertionResult {
	res := AssertionResult{Name: a.Name, Line: a.line, At: j.log.since()}
	var within time.Duration
	var eval func() (bool, string)
	switch {
	case a.Converged != nil:
		c := a.Converged
		within = time.Duration(c.Within)
		res.defaultName(fmt.Sprintf("converged: %s within %v", c.Selector, c.Within))
		eval = func() (bool, string) { return j.converged(c.Selector, within) }
	case a.NotConverged != nil:
		c := a.NotConverged
		res.defaultName(fmt.Sprintf("not converged: %s for %v", c.Selector, c.For))
		return j.notConverged(ctx, res, c)
	case a.State != nil:
		c := a.State
		within = time.Duration(c.Within)
		want, _ := json.Marshal(c.Equals)
		res.defaultName(fmt.Sprintf("state: %s has %s = %s within %v", c.Selector, c.Path, want, c.Within))
		eval = func() (bool, string) { return j.stateIs(c) }
	case a.Event != nil:
		c := a.Event
		within = time.Duration(c.Within)
		res.defaultName(fmt.Sprintf("event: %s reported %s within %v", c.Selector, describeEvent(c), c.Within))
		eval = func() (bool, string) { return j.eventSeen(c) }
	case a.RolledBack != nil:
		c := a.RolledBack
		within = time.Duration(c.Within)
		ev := &EventCheck{Selector: c.Selector, Kind: "module.rolled_back", Module: c.Module}
		res.defaultName(fmt.Sprintf("rolled back: %s rolled %s back within %v", c.Selector, c.Module, c.Within))
		eval = func() (bool, string) { return j.eventSeen(ev) }
	case a.Job != nil:
		c := a.Job
		within = time.Duration(c.Within)
		res.defaultName(fmt.Sprintf("job: %s has job %s %s within %v", c.Selector, c.ID, c.Phase, c.Within))
		eval = func() (bool, string) { return j.jobIs(ctx, c) }
	case a.Rollout != nil:
		c := a.Rollout
		within = time.Duration(c.Within)
		name := fmt.Sprintf("rollout: %s%s has rollout %s %s", c.Selector, waveText(c.Wave), c.ID, orText(c.Phase, "applied"))
		if c.Module != "" {
			name += fmt.Sprintf(", runs %s %s", c.Module, c.ModuleVersion)
		}
		if c.AppliedWithin != 0 {
			name += fmt.Sprintf(", applied within %v of its window and busy sensor allowing it", c.AppliedWithin)
		}
		res.defaultName(fmt.Sprintf("%s, within %v", name, c.Within))
		eval = func() (bool, string) { return j.rolloutIs(c, j.rollouts) }
	case a.NothingLost != nil:
		c := a.NothingLost
		within = time.Duration(c.Within)
		if within == 0 {
			within = 10 * time.Second
		}
		res.defaultName(fmt.Sprintf("nothing lost: %s", c.Selector))
		eval = func() (bool, string) { return j.nothingLost(c.Selector) }
	}
	begin := time.Now()
	for {
		ok, reason := eval()
		if ok || time.Since(begin) >= within || ctx.Err() != nil {
			res.Passed, res.Reason, res.Took = ok, reason, time.Since(begin)
			if !ok && ctx.Err() != nil && time.Since(begin) < within {
				res.Reason += " (the scenario timed out first)"
			}
			return res
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (a *AssertionResult) defaultName(n string) {
	if a.Name == "" {
		a.Name = n
	}
}

func describeEvent(c *EventCheck) string {
	s := c.Kind
	if c.Module != "" {
		s += " of " + c.Module
		if c.Job != "" {
			s += "." + c.Job
		}
	} else if c.Job != "" {
		s += " of job " + c.Job
	}
	if c.Message != "" {
		s += fmt.Sprintf(" saying %q", c.Message)
	}
	return s
}

// why says what a device last said about itself.
func (j *judge) why(id string, s seen) string {
	if !s.hasState {
		return id + ": no state reported"
	}
	st := s.state
	msg := fmt.Sprintf("%s: reports target version %d of %d, phase %s", id, st.TargetVersion, j.pushed.expected(id), st.Phase)
	if st.Converged {
		msg += ", converged"
	}
	if st.Error != "" {
		msg += ", last error: " + firstLine(st.Error)
	}
	return msg
}

func (j *judge) converged(sel Selector, within time.Duration) (bool, string) {
	ids := j.agents.selected(sel)
	var late []string
	var slowest string
	var slowestAt time.Duration
	for _, id := range ids {
		exp := j.pushed.expected(id)
		s := j.obs.snapshot(id)
		if exp == 0 {
			late = append(late, id+": no target was pushed to it or its groups")
			continue
		}
		at, ok := s.converged[exp]
		if !ok {
			late = append(late, j.why(id, s))
			continue
		}
		if at >= slowestAt {
			slowest, slowestAt = id, at
		}
	}
	n := len(ids) - len(late)
	if len(late) > 0 {
		return false, fmt.Sprintf("%s: %d of %d converged within %v; %s", sel, n, len(ids), within, list(late, 3))
	}
	return true, fmt.Sprintf("%d of %d converged (the last, %s, at %s)", n, len(ids), slowest, fmtAt(slowestAt))
}

func (j *judge) notConverged(ctx context.Context, res AssertionResult, c *NotConvergedChk) AssertionResult {
	begin := time.Now()
	end := begin.Add(time.Duration(c.For))
	for {
		for _, id := range j.agents.selected(c.Selector) {
			s := j.obs.snapshot(id)
			exp := j.pushed.expected(id)
			if at, ok := s.converged[exp]; ok && exp > 0 && at >= res.At {
				res.Took = time.Since(begin)
				res.Reason = fmt.Sprintf("%s converged on target version %d at %s, within the %v it should not", id, exp, fmtAt(at), c.For)
				return res
			}
		}
		if time.Now().After(end) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	res.Took = time.Since(begin)
	if ctx.Err() != nil && time.Now().Before(end) {
		res.Reason = "the scenario timed out before the period ended"
		return res
	}
	var whys []string
	for _, id := range j.agents.selected(c.Selector) {
		whys = append(whys, j.why(id, j.obs.snapshot(id)))
	}
	res.Passed = true
	res.Reason = fmt.Sprintf("none converged in %v; %s", c.For, list(whys, 3))
	return res
}

func (j *judge) stateIs(c *StateCheck) (bool, string) {
	want := normalize(c.Equals)
	var bad []string
	for _, id := range j.agents.selected(c.Selector) {
		s := j.obs.snapshot(id)
		got, ok := at(s.state.State, c.Path)
		switch {
		case !s.hasState:
			bad = append(bad, id+": no state reported")
		case !ok:
			bad = append(bad, fmt.Sprintf("%s: %s is absent", id, c.Path))
		case !reflect.DeepEqual(got, want):
			g, _ := json.Marshal(got)
			bad = append(bad, fmt.Sprintf("%s: %s is %s", id, c.Path, g))
		}
	}
	w, _ := json.Marshal(want)
	if len(bad) > 0 {
		return false, fmt.Sprintf("want %s; %s", w, list(bad, 3))
	}
	return true, fmt.Sprintf("%s = %s on %s", c.Path, w, c.Selector)
}

func normalize(v any) any {
	b, _ := json.Marshal(v)
	var out any
	json.Unmarshal(b, &out)
	return out
}

func (j *judge) eventSeen(c *EventCheck) (bool, string) {
	var missing []string
	var first time.Duration = -1
	ids := j.agents.selected(c.Selector)
	for _, id := range ids {
		s := j.obs.snapshot(id)
		found := false
		kinds := map[string]int{}
		for _, e := range s.events {
			kinds[string(e.Kind)]++
			if string(e.Kind) == c.Kind && (c.Module == "" || e.Module == c.Module) && (c.Job == "" || e.Job == c.Job) &&
				strings.Contains(e.Message, c.Message) {
				found = true
				if first < 0 || e.at < first {
					first = e.at
				}
				break
			}
		}
		if !found {
			missing = append(missing, fmt.Sprintf("%s: none among its %d events (%s)", id, len(s.events), kindSummary(kinds)))
		}
	}
	if len(missing) > 0 {
		return false, fmt.Sprintf("%d of %d reported %s; %s", len(ids)-len(missing), len(ids), describeEvent(c), list(missing, 3))
	}
	return true, fmt.Sprintf("%d of %d reported it (the first at %s)", len(ids), len(ids), fmtAt(first))
}

// jobIs reads every selected agent's retained status of job c.ID from the
// broker, as an operator does the next day, and checks it.
func (j *judge) jobIs(ctx context.Context, c *JobCheck) (bool, string) {
	statuses, err := j.op.JobStatuses(ctx, c.ID, 300*time.Millisecond)
	if err != nil {
		return false, "reading job statuses: " + err.Error()
	}
	by := map[string]fleet.JobStatusReport{}
	for _, s := range statuses {
		by[s.Device] = s
	}
	ids := j.agents.selected(c.Selector)
	var wrong []string
	for _, id := range ids {
		s, ok := by[id]
		switch {
		case !ok:
			wrong = append(wrong, id+": no status")
		case s.Phase != c.Phase:
			wrong = append(wrong, fmt.Sprintf("%s: %s (%s%s)", id, s.Phase, s.Why, s.Error))
		case c.Attempt != 0 && s.Attempt != c.Attempt:
			wrong = append(wrong, fmt.Sprintf("%s: attempt %d", id, s.Attempt))
		case !strings.Contains(string(s.Result), c.Result):
			wrong = append(wrong, fmt.Sprintf("%s: result %s", id, s.Result))
		}
	}
	if len(wrong) > 0 {
		return false, fmt.Sprintf("%d of %d have job %s %s; %s", len(ids)-len(wrong), len(ids), c.ID, c.Phase, list(wrong, 5))
	}
	return true, fmt.Sprintf("%d of %d have it", len(ids), len(ids))
}

func kindSummary(kinds map[string]int) string {
	keys := make([]string, 0, len(kinds))
	for k := range kinds {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s×%d", k, kinds[k]))
	}
	if len(parts) == 0 {
		return "no events"
	}
	return strings.Join(parts, ", ")
}

func (j *judge) nothingLost(sel Selector) (bool, string) {
	var bad []string
	total, dups, lates := uint64(0), 0, 0
	for _, id := range j.agents.selected(sel) {
		missing, top, d, late, epochs := j.obs.gaps(id)
		total += top
		dups += d
		lates += late
		switch {
		case len(epochs) > 1:
			bad = append(bad, fmt.Sprintf("%s: its store was replaced during the run (events numbered under epochs %s), so its numbering cannot show what was lost", id, strings.Join(epochs, ", ")))
		case top == 0:
			bad = append(bad, id+": no numbered events arrived")
		case len(missing) > 0:
			bad = append(bad, fmt.Sprintf("%s: of 1…%d, seq %v missing", id, top, missing))
		}
	}
	if len(bad) > 0 {
		return false, list(bad, 3)
	}
	return true, fmt.Sprintf("%d events, seq contiguous from 1 on every device; %d duplicate deliveries dropped, %d put back in seq order", total, dups, lates)
}

// convergedNow counts the agents that report converged now.
func (j *judge) convergedNow() (now, of int) {
	for _, a := range j.agents.agents {
		s := j.obs.snapshot(a.ID())
		if s.hasState && s.state.Converged {
			now++
		}
	}
	return now, len(j.agents.agents)
}

func waveText(w int) string {
	if w == 0 {
		return ""
	}
	return fmt.Sprintf(" in wave %d", w)
}

func orText(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
