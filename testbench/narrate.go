package testbench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
)

// narrator keeps what happened in a run, the timeline and the verdicts,
// and shows each line on Options.Progress as it comes, with the live
// status line between them.
type narrator struct {
	out    io.Writer // nil: nothing is shown
	redraw bool      // out is a terminal: live redraws the status line
	name   string    // the scenario's, for the status line
	// start is when the timeline starts; set by setup before anything
	// else reads it.
	start time.Time

	outMu    sync.Mutex // one line at a time on out
	mu       sync.Mutex
	timeline []Entry
	results  []AssertionResult
}

func (n *narrator) since() time.Duration { return time.Since(n.start) }

// note adds a line to the timeline and shows it.
func (n *narrator) note(device, what, detail string) {
	e := Entry{At: n.since(), Device: device, What: what, Detail: detail}
	n.mu.Lock()
	n.timeline = append(n.timeline, e)
	n.mu.Unlock()
	n.printf("  %8s  %-14s %s", fmtAt(e.At), what, strings.TrimSpace(device+" "+detail))
}

func (n *narrator) printf(format string, args ...any) {
	if n.out == nil {
		return
	}
	n.outMu.Lock()
	defer n.outMu.Unlock()
	if n.redraw {
		fmt.Fprint(n.out, "\r\033[K")
	}
	fmt.Fprintf(n.out, format+"\n", args...)
}

// status is the live line: time, convergence, assertions.
func (n *narrator) status(converged func() (now, of int)) string {
	conv, agents := converged()
	n.mu.Lock()
	done := len(n.results)
	failed := 0
	for _, a := range n.results {
		if !a.Passed {
			failed++
		}
	}
	n.mu.Unlock()
	return fmt.Sprintf("  %s  %s  %d/%d agents converged now · %d checks done, %d failed", n.name, fmtAt(n.since()), conv, agents, done, failed)
}

// live redraws the status line until ctx is done, then clears it.
func (n *narrator) live(ctx context.Context, converged func() (now, of int)) {
	if !n.redraw || n.out == nil {
		return
	}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			n.outMu.Lock()
			fmt.Fprint(n.out, "\r\033[K")
			n.outMu.Unlock()
			return
		case <-t.C:
		}
		line := n.status(converged)
		n.outMu.Lock()
		fmt.Fprint(n.out, "\r\033[K"+line)
		n.outMu.Unlock()
	}
}

// record adds a verdict and shows it.
func (n *narrator) record(a AssertionResult) {
	n.mu.Lock()
	n.results = append(n.results, a)
	n.mu.Unlock()
	verdict := "PASS"
	if !a.Passed {
		verdict = "FAIL"
	}
	n.printf("  %8s  %s %s: %s", fmtAt(a.At+a.Took), verdict, a.Name, a.Reason)
}

// story is what was noted and recorded so far.
func (n *narrator) story() ([]AssertionResult, []Entry) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.results), slices.Clone(n.timeline)
}

// list joins up to n items and says how many more there are.
func list(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, "; ")
	}
	return strings.Join(items[:n], "; ") + fmt.Sprintf("; and %d more", len(items)-n)
}

func fmtAt(d time.Duration) string {
	return fmt.Sprintf("+%.1fs", d.Seconds())
}
