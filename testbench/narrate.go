package testbench

import (
	"context"
	"fmt"
	"strings"
	"time"
)

func (r *run) since() time.Duration { return time.Since(r.start) }

// note adds a line to the timeline and shows it.
func (r *run) note(device, what, detail string) {
	e := Entry{At: r.since(), Device: device, What: what, Detail: detail}
	r.mu.Lock()
	r.timeline = append(r.timeline, e)
	r.mu.Unlock()
	r.printf("  %8s  %-14s %s", fmtAt(e.At), what, strings.TrimSpace(device+" "+detail))
}

func (r *run) printf(format string, args ...any) {
	if r.opts.Progress == nil {
		return
	}
	r.progOut.Lock()
	defer r.progOut.Unlock()
	if r.opts.Live {
		fmt.Fprint(r.opts.Progress, "\r\033[K")
	}
	fmt.Fprintf(r.opts.Progress, format+"\n", args...)
}

// status is the live line: time, convergence, assertions.
func (r *run) status() string {
	conv := 0
	for _, a := range r.agents {
		s := r.obs.snapshot(a.ID())
		if s.hasState && s.state.Converged {
			conv++
		}
	}
	r.mu.Lock()
	done := len(r.results)
	failed := 0
	for _, a := range r.results {
		if !a.Passed {
			failed++
		}
	}
	r.mu.Unlock()
	return fmt.Sprintf("  %s  %s  %d/%d agents converged now · %d checks done, %d failed", r.sc.Name, fmtAt(r.since()), conv, len(r.agents), done, failed)
}

func (r *run) live(ctx context.Context) {
	if !r.opts.Live || r.opts.Progress == nil {
		return
	}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			r.progOut.Lock()
			fmt.Fprint(r.opts.Progress, "\r\033[K")
			r.progOut.Unlock()
			return
		case <-t.C:
		}
		line := r.status()
		r.progOut.Lock()
		fmt.Fprint(r.opts.Progress, "\r\033[K"+line)
		r.progOut.Unlock()
	}
}

func (r *run) record(a AssertionResult) {
	r.mu.Lock()
	r.results = append(r.results, a)
	r.mu.Unlock()
	verdict := "PASS"
	if !a.Passed {
		verdict = "FAIL"
	}
	r.printf("  %8s  %s %s: %s", fmtAt(a.At+a.Took), verdict, a.Name, a.Reason)
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
