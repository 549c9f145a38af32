package plan

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNoPlan means no sequence of the available jobs reaches the target.
// Find returns it wrapped, usually as a *NoPlanError that says why.
var ErrNoPlan = errors.New("plan: no plan reaches the target")

// NoPlanError explains a failed search: where the search got furthest,
// which parts of the target were still unmet there, and for each, the jobs
// tried and why each did not help.
type NoPlanError struct {
	// Bound names the limit the search hit, if one did.
	Bound string
	// After is how many tasks the search had planned where it got stuck.
	After int
	// Places are the target's unmet leaves there.
	Places []Stuck
}

// Stuck is one unmet part of the target.
type Stuck struct {
	Path    string // the unmet leaf
	Current string // its value in the state, JSON; empty if absent
	Target  string // its value in the target, JSON
	// At is where the jobs were tried: Path or the parent that binds them.
	At    string
	Tried []Attempt
}

// Attempt is one job tried, and why it did not help.
type Attempt struct {
	Job string
	Why string
}

func (e *NoPlanError) Error() string {
	var b strings.Builder
	b.WriteString(ErrNoPlan.Error())
	if e.Bound != "" {
		b.WriteString(": " + e.Bound)
	}
	if e.After > 0 {
		fmt.Fprintf(&b, "; stuck after %d planned tasks", e.After)
	}
	writePlaces(&b, e.Places)
	return b.String()
}

// writePlaces says, for each place, its value, its target and why each
// job tried there did not help, one line each, indented.
func writePlaces(b *strings.Builder, places []Stuck) {
	for _, p := range places {
		cur := p.Current
		if cur == "" {
			cur = "absent"
		}
		fmt.Fprintf(b, "\n  %s: is %s, target %s", p.Path, cur, p.Target)
		switch {
		case len(p.Tried) == 0 && p.At == "":
			b.WriteString(": no job binds this path or a parent of it")
		case len(p.Tried) == 0:
			b.WriteString(": no job was tried")
		}
		for _, a := range p.Tried {
			where := ""
			if p.At != p.Path {
				where = " (at " + p.At + ")"
			}
			fmt.Fprintf(b, "\n    %s%s: %s", a.Job, where, a.Why)
		}
	}
}

// Is makes errors.Is(err, ErrNoPlan) hold.
func (e *NoPlanError) Is(target error) bool { return target == ErrNoPlan }

// ErrPartial means a partial plan leaves part of the target unreached.
// Plan.UnreachedError returns it wrapped, as a *PartialError that says why.
var ErrPartial = errors.New("plan: part of the target cannot be reached")

// PartialError says which parts of the target a partial plan leaves out
// and why, in the words of a *NoPlanError.
type PartialError struct {
	Places []Stuck
}

func (e *PartialError) Error() string {
	var b strings.Builder
	b.WriteString(ErrPartial.Error())
	if len(e.Places) == 1 {
		b.WriteString(" at 1 place; a partial plan leaves it out")
	} else {
		fmt.Fprintf(&b, " at %d places; a partial plan leaves them out", len(e.Places))
	}
	writePlaces(&b, e.Places)
	return b.String()
}

// Is makes errors.Is(err, ErrPartial) hold.
func (e *PartialError) Is(target error) bool { return target == ErrPartial }

// UnreachedError is nil when the plan reaches the whole target, and
// otherwise a *PartialError naming what it leaves out and why.
func (p *Plan) UnreachedError() error {
	if len(p.Unreached) == 0 {
		return nil
	}
	return &PartialError{Places: p.Unreached}
}
