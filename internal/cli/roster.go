package cli

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/runtime"
)

// settleQuiet and defaultSettle bound how long tern status (and tern watch,
// before it judges "all converged") collects the retained reports: until
// none came for settleQuiet, and at most --wait (defaultSettle). A broker
// sends every retained message right after the subscription is
// acknowledged, so a quiet gap means it has sent them all; a fleet that
// keeps reporting never goes quiet, and --wait ends the wait then.
const (
	settleQuiet   = 300 * time.Millisecond
	defaultSettle = 2 * time.Second
)

// member is what tern knows of one device: its last state report, its
// online flag, and whether it refused the target being rolled out.
type member struct {
	id      string
	state   *fleet.StateReport // nil until the first report
	online  *bool              // nil until the first flag
	refused string             // why it refused the target at or above the rollout version
}

// roster folds the retained and live reports of a fleet into one entry per
// device, filtered to one group when group is set. Membership of a group
// comes from the groups a device lists in its state reports.
type roster struct {
	group   string
	where   selection // --where; empty: every device (of the group)
	members map[string]*member
}

func newRoster(group string) *roster {
	return &roster{group: group, members: make(map[string]*member)}
}

func (r *roster) get(id string) *member {
	m := r.members[id]
	if m == nil {
		m = &member{id: id}
		r.members[id] = m
	}
	return m
}

func (r *roster) addState(s fleet.StateReport) { r.get(s.Device).state = &s }

func (r *roster) addOnline(p fleet.Presence) { r.get(p.Device).online = &p.Online }

// inScope reports whether m is one of the devices asked about.
func (r *roster) inScope(m *member) bool {
	if r.group != "" && (m.state == nil || !slices.Contains(m.state.Groups, r.group)) {
		return false
	}
	return r.where.matches(m.id, m.state)
}

// everyDevice reports whether every device is in scope, whatever it
// reports.
func (r *roster) everyDevice() bool { return r.group == "" && len(r.where) == 0 }

// list returns the devices in scope, sorted by id.
func (r *roster) list() []*member {
	var out []*member
	for _, m := range r.members {
		if r.inScope(m) {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// reached reports whether m reports a target of at least version (any
// target at all when version is 0) and the state that satisfies it.
func (m *member) reached(version uint64) bool {
	return m.state != nil && m.state.Converged && m.state.TargetVersion > 0 && m.state.TargetVersion >= version
}

// failed says why m failed to reach version, or "" when it did not (yet):
// it refused the target, or holds it and its last attempt failed.
func (m *member) failed(version uint64) string {
	if m.refused != "" {
		return "refused the target: " + m.refused
	}
	if s := m.state; s != nil && !s.Converged && s.TargetVersion >= version && (s.Phase == runtime.PhaseFailed || s.Error != "") {
		if s.Error != "" {
			return s.Error
		}
		return "phase failed"
	}
	return ""
}

// verdict judges m against the version it must reach; known is false
// while that version is not known yet (tern watch --pushed, before the
// device's other targets were read): then only a refusal fails it.
func (m *member) verdict(version uint64, known bool) (reached bool, failure string) {
	switch {
	case !known && m.refused != "":
		return false, m.failed(version)
	case !known:
		return false, ""
	case m.reached(version):
		return true, ""
	}
	return false, m.failed(version)
}

func (m *member) isOnline() bool { return m.online != nil && *m.online }

// progress counts a rollout: converged, failed and pending partition the
// devices; offline overlaps them (an offline device is also counted by its
// last report). Expect raises the total to devices that never reported,
// counted as pending.
type progress struct {
	Type string `json:"type"` // always "progress", for --json readers
	// Scope is the source tern watch --pushed names (group/<name> or
	// device/<id>), and Version the version pushed to it; without
	// --pushed, Scope is empty and Version the combined version.
	Scope     string `json:"scope,omitempty"`
	Version   uint64 `json:"version"`
	Total     int    `json:"total"`
	Converged int    `json:"converged"`
	Failed    int    `json:"failed"`
	Pending   int    `json:"pending"`
	Offline   int    `json:"offline"`
}

// progress counts the devices in scope against the version each must
// reach (want; ok false while it is not known).
func (r *roster) progress(want func(*member) (v uint64, ok bool), expect int) progress {
	p := progress{Type: "progress"}
	for _, m := range r.list() {
		p.Total++
		reached, failure := m.verdict(want(m))
		switch {
		case reached:
			p.Converged++
		case failure != "":
			p.Failed++
		default:
			p.Pending++
		}
		if !m.isOnline() {
			p.Offline++
		}
	}
	if expect > p.Total {
		p.Pending += expect - p.Total
		p.Total = expect
	}
	return p
}

// done reports whether every device converged.
func (p progress) done() bool { return p.Total > 0 && p.Converged == p.Total }

func (p progress) String() string {
	what := "rollout"
	if p.Version > 0 {
		what = fmt.Sprintf("rollout v%d", p.Version)
	}
	if p.Scope != "" {
		what = fmt.Sprintf("rollout %s v%d", p.Scope, p.Version)
	}
	return fmt.Sprintf("%s: %d/%d converged, %d failed, %d pending, %d offline", what, p.Converged, p.Total, p.Failed, p.Pending, p.Offline)
}

// collect reads the retained state reports and online flags of device
// (fleet.AnyDevice for all) into r until they settle (see settleQuiet) or
// wait is over.
func collect(ctx context.Context, op *fleet.Operator, device string, wait time.Duration, r *roster) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the watches
	states, err := op.WatchStates(ctx, device)
	if err != nil {
		return err
	}
	online, err := op.WatchOnline(ctx, device)
	if err != nil {
		return err
	}
	s := newSettler(wait)
	defer s.stop()
	for {
		select {
		case st, ok := <-states:
			if !ok {
				return ctx.Err()
			}
			r.addState(st)
			s.saw()
		case p, ok := <-online:
			if !ok {
				return ctx.Err()
			}
			r.addOnline(p)
			s.saw()
		case <-s.C():
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// settler tells when the retained reports have settled: settleQuiet after
// the last one, and at most wait after it started. Select on C, and call
// saw after every report and fired when C was ready.
type settler struct {
	timer    *time.Timer
	deadline time.Time
	done     bool
}

func newSettler(wait time.Duration) *settler {
	if wait <= 0 {
		wait = defaultSettle
	}
	return &settler{timer: time.NewTimer(min(settleQuiet, wait)), deadline: time.Now().Add(wait)}
}

// C is ready once, when the reports settled; nil after that.
func (s *settler) C() <-chan time.Time {
	if s.done {
		return nil
	}
	return s.timer.C
}

// saw restarts the quiet gap after a report, never past the deadline.
func (s *settler) saw() {
	if !s.done {
		s.timer.Reset(max(0, min(settleQuiet, time.Until(s.deadline))))
	}
}

func (s *settler) fired() { s.done = true }

func (s *settler) stop() { s.timer.Stop() }

// modulesText lists module versions as name@version, sorted.
func modulesText(mods map[string]string) string {
	names := make([]string, 0, len(mods))
	for n := range mods {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names {
		names[i] = n + "@" + mods[n]
	}
	return strings.Join(names, ",")
}
