package cli

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/tern-iot/tern/fleet"
)

// ExitDryRunCannot and ExitDryRunNoAnswer are tern push --dry-run's
// answers, as tern job status's: some device in scope cannot reach the
// candidate (or refused the request), or, with none that cannot, some did
// not answer (offline, busy, or an older ternd).
const (
	ExitDryRunCannot   = ExitJobFailed
	ExitDryRunNoAnswer = ExitJobNotDone
)

// dryRunFlags are tern push's flags for a dry-run.
type dryRunFlags struct {
	on      bool
	timeout time.Duration
	json    bool
	fs      *flag.FlagSet
}

// register adds the dry-run flags to tern push and tern rollout start of
// a target (cmd); tern sign has none.
func (d *dryRunFlags) register(fs *flag.FlagSet, cmd string) {
	if cmd != "push" && cmd != "rollout start" {
		return
	}
	d.fs = fs
	fs.BoolVar(&d.on, "dry-run", false, "ask every device in scope what it would do with the target, without pushing it: each plans it on its live state and answers; prints a summary (exit 5 if some cannot, 4 if some did not answer)")
	fs.DurationVar(&d.timeout, "timeout", 15*time.Second, "with --dry-run: how long to wait for the devices' answers")
	fs.BoolVar(&d.json, "json", false, "with --dry-run: print the summary as one JSON object")
}

// wanted reports whether the command line asks for a dry-run, or gives
// its flags without --dry-run, which dryRun refuses: a push with --json
// must not push.
func (d *dryRunFlags) wanted() bool {
	given := false
	if d.fs != nil {
		d.fs.Visit(func(f *flag.Flag) { given = given || f.Name == "json" || f.Name == "timeout" })
	}
	return d.on || given
}

// dryRunPlan is one distinct plan and the devices that would run it.
type dryRunPlan struct {
	Tasks     []fleet.DryRunTask `json:"tasks"`
	MoreTasks int                `json:"more_tasks,omitempty"`
	Devices   []string           `json:"devices"`
}

// dryRunReason is one reason and the devices that gave it; Why is the
// whole explanation of the first of them.
type dryRunReason struct {
	Reason  string   `json:"reason"`
	Why     string   `json:"why,omitempty"`
	Devices []string `json:"devices"`
}

// dryRunSummary is what tern push --dry-run --json prints.
type dryRunSummary struct {
	ID        string         `json:"id"`
	Scope     string         `json:"scope"`
	Version   uint64         `json:"version"`
	Devices   int            `json:"devices"`
	Plans     []dryRunPlan   `json:"plans"`
	Converged []string       `json:"converged"`
	Cannot    []dryRunReason `json:"cannot"`
	Refused   []dryRunReason `json:"refused"`
	Busy      []string       `json:"busy"`
	NoAnswer  []string       `json:"no_answer"`
	// Answers are the devices' answers as they came, by device.
	Answers map[string]fleet.DryRunAnswer `json:"answers"`
}

// dryRun asks the devices of scope what they would do with env's target
// (tern push --dry-run) and prints the summary.
func dryRun(ctx context.Context, ff *fleetFlags, scope string, env fleet.TargetEnvelope, priv ed25519.PrivateKey, d dryRunFlags, stdout, stderr io.Writer) error {
	if !d.on {
		return usageError{errors.New("--json and --timeout go with --dry-run; add --dry-run to ask the devices, or leave them out to push")}
	}
	if d.timeout <= 0 {
		return usageError{fmt.Errorf("--timeout %v: must be positive, e.g. --timeout 30s", d.timeout)}
	}
	if env.Replaces != 0 {
		return usageError{errors.New("--dry-run and --replaces: a dry-run previews a push, not a rebase; leave out --replaces")}
	}
	op, err := ff.dial(ctx)
	if err != nil {
		return err
	}
	defer op.Close()
	kind, name, _ := strings.Cut(scope, "/")
	group, device := "", fleet.AnyDevice
	if kind == "group" {
		group = name
	} else {
		device = name
	}
	// Who is in scope: a group's members list it in their retained state
	// reports, as for tern status.
	r := newRoster(group)
	if err := collect(ctx, op, device, defaultSettle, r); err != nil {
		return fmt.Errorf("reading device reports: %w", err)
	}
	expected := map[string]bool{}
	offline := map[string]bool{}
	for _, m := range r.list() {
		expected[m.id] = true
		offline[m.id] = !m.isOnline()
	}
	if kind == "device" {
		expected[name] = true
	}

	req := fleet.DryRunRequest{Format: fleet.Format, ID: fleet.NewDryRunID(time.Now()), Version: env.Version, Target: env.Target, Issued: time.Now().UTC()}
	req.SetTopics(fleet.Topics{Prefix: ff.prefix, Fleet: ff.fleet})
	if priv != nil {
		if err := req.Sign(scope, priv); err != nil {
			return err
		}
	}
	wctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	answers, err := op.DryRun(wctx, scope, req)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "dry-run %s of version %d on %s: asked %d devices, waiting up to %v for their answers\n", req.ID, req.Version, scope, len(expected), d.timeout)
	got := map[string]fleet.DryRunAnswer{}
wait:
	for {
		select {
		case a, ok := <-answers:
			if !ok {
				break wait
			}
			if a.ID != req.ID {
				continue
			}
			got[a.Device] = a
			expected[a.Device] = true // answered, so in scope, reported or not
			if len(got) == len(expected) {
				break wait
			}
		case <-wctx.Done():
			break wait
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	s := summarize(req, scope, expected, got)
	if d.json {
		fmt.Fprintln(stdout, string(mustJSON(s)))
	} else {
		printDryRun(stdout, s, offline, d.timeout)
	}
	switch {
	case len(s.Cannot)+len(s.Refused) > 0:
		n := 0
		for _, g := range append(slices.Clone(s.Cannot), s.Refused...) {
			n += len(g.Devices)
		}
		return jobFailedError{fmt.Errorf("dry-run: %d of %d devices cannot reach the target or refused it; nothing was pushed", n, s.Devices)}
	case len(s.Busy)+len(s.NoAnswer) > 0:
		return notConvergedError{fmt.Errorf("dry-run: %d of %d devices did not answer (offline, busy, or a ternd without dry-runs); nothing was pushed", len(s.Busy)+len(s.NoAnswer), s.Devices)}
	case s.Devices == 0:
		return fmt.Errorf("dry-run: no device in %s reported or answered: a group's members list it in their state reports; nothing was pushed", scope)
	}
	return nil
}

// summarize groups the answers: devices by plan and by reason.
func summarize(req fleet.DryRunRequest, scope string, expected map[string]bool, got map[string]fleet.DryRunAnswer) dryRunSummary {
	s := dryRunSummary{ID: req.ID, Scope: scope, Version: req.Version, Devices: len(expected), Answers: got,
		Plans: []dryRunPlan{}, Converged: []string{}, Cannot: []dryRunReason{}, Refused: []dryRunReason{}, Busy: []string{}, NoAnswer: []string{}}
	ids := make([]string, 0, len(expected))
	for id := range expected {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	plans := map[string]int{}
	reasons := map[string]int{}
	for _, id := range ids {
		a, ok := got[id]
		switch {
		case !ok:
			s.NoAnswer = append(s.NoAnswer, id)
		case a.Outcome == fleet.DryRunConverged:
			s.Converged = append(s.Converged, id)
		case a.Outcome == fleet.DryRunBusy:
			s.Busy = append(s.Busy, id)
		case a.Outcome == fleet.DryRunChange && len(a.Unreached) == 0:
			key := string(mustJSON([]any{a.Tasks, a.MoreTasks}))
			i, seen := plans[key]
			if !seen {
				i = len(s.Plans)
				plans[key] = i
				s.Plans = append(s.Plans, dryRunPlan{Tasks: a.Tasks, MoreTasks: a.MoreTasks})
			}
			s.Plans[i].Devices = append(s.Plans[i].Devices, id)
		default: // cannot, refused, and a plan that leaves part unreached: it cannot reach the candidate either
			list, outcome := &s.Cannot, fleet.DryRunCannot
			if a.Outcome == fleet.DryRunRefused {
				list, outcome = &s.Refused, a.Outcome
			}
			key := outcome + "\x00" + a.Reason
			i, seen := reasons[key]
			if !seen {
				i = len(*list)
				reasons[key] = i
				*list = append(*list, dryRunReason{Reason: a.Reason, Why: a.Why})
			}
			(*list)[i].Devices = append((*list)[i].Devices, id)
		}
	}
	return s
}

// printDryRun prints the summary for a person.
func printDryRun(w io.Writer, s dryRunSummary, offline map[string]bool, timeout time.Duration) {
	fmt.Fprintf(w, "dry-run %s: target version %d on %s, %d devices\n", s.ID, s.Version, s.Scope, s.Devices)
	for i, p := range s.Plans {
		n := len(p.Tasks) + p.MoreTasks
		fmt.Fprintf(w, "\n%d would run plan %c (%d tasks): %s\n", len(p.Devices), 'A'+rune(i%26), n, devicesList(p.Devices))
		for _, t := range p.Tasks {
			fmt.Fprintf(w, "    %s\n", t)
		}
		if p.MoreTasks > 0 {
			fmt.Fprintf(w, "    … and %d more tasks\n", p.MoreTasks)
		}

	}
	if len(s.Converged) > 0 {
		fmt.Fprintf(w, "\n%d already converged (nothing to do): %s\n", len(s.Converged), devicesList(s.Converged))
	}
	for _, g := range []struct {
		what string
		list []dryRunReason
	}{{"cannot", s.Cannot}, {"refused", s.Refused}} {
		if len(g.list) == 0 {
			continue
		}
		n := 0
		for _, r := range g.list {
			n += len(r.Devices)
		}
		fmt.Fprintf(w, "\n%d %s, by reason:\n", n, g.what)
		for _, r := range g.list {
			fmt.Fprintf(w, "  %d: %s\n    %s\n", len(r.Devices), r.Reason, devicesList(r.Devices))
			if r.Why != "" && r.Why != r.Reason {
				fmt.Fprintf(w, "    %s says:\n", r.Devices[0])
				for line := range strings.SplitSeq(r.Why, "\n") {
					fmt.Fprintf(w, "      %s\n", line)
				}
			}
		}
	}
	if len(s.Busy) > 0 {
		fmt.Fprintf(w, "\n%d busy (their agent was running a plan; ask again): %s\n", len(s.Busy), devicesList(s.Busy))
	}
	if len(s.NoAnswer) > 0 {
		names := make([]string, len(s.NoAnswer))
		for i, id := range s.NoAnswer {
			names[i] = id
			if offline[id] {
				names[i] += " (offline)"
			}
		}
		fmt.Fprintf(w, "\n%d did not answer within %v: %s\n", len(s.NoAnswer), timeout, devicesList(names))
	}
}

// devicesList names up to 20 devices, then counts the rest.
func devicesList(ids []string) string {
	if len(ids) <= 20 {
		return strings.Join(ids, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(ids[:20], ", "), len(ids)-20)
}
