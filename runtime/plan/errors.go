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
	for _, p := range e.Places {
		cur := p.Current
		if cur == "" {
			cur = "absent"
		}
		fmt.Fprintf(&b, "\n  %s: is %s, target %s", p.Path, cur, p.Target)
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
			fmt.Fprintf(&b, "\n    %s%s: %s", a.Job, where, a.Why)
		}
	}
	return b.String()
}

// Is makes errors.Is(err, ErrNoPlan) hold.
func (e *NoPlanError) Is(target error) bool { return target == ErrNoPlan }
