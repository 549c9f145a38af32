package cli

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/runtime/api"
)

// ExitJobNotDone and ExitJobFailed are tern job status's answers: some
// device in the job's scope has not ended it (or not reported), or some
// ended it otherwise than succeeded.
const (
	ExitJobNotDone = ExitNotConverged
	ExitJobFailed  = 5
)

type jobFailedError struct{ error }

// jobFlags are the flags of tern job submit and tern job edit: what the
// job runs and when.
type jobFlags struct {
	module, command, args  *string
	argKV                  multiFlag
	at, cron, tz, deadline *string
	window, backoff        *time.Duration
	after                  multiFlag
	attempts               *int
	retry                  *bool
	keyPath                *string
}

// multiFlag is a flag given any number of times.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func (f *jobFlags) register(fs *flag.FlagSet) {
	f.module = fs.String("module", "", "the module whose command the job runs")
	f.command = fs.String("command", "", "the command to run (a module's commands: tern module inspect M.wasm)")
	f.args = fs.String("args", "", "the command's arguments: a JSON object, a file, or - for stdin")
	fs.Var(&f.argKV, "arg", "one argument `KEY=VALUE` (a JSON value, else a string); repeat for more; in an edit, changes that one only")
	f.at = fs.String("at", "", "run at or after `TIME`: RFC 3339 (2026-12-07T04:00:00+01:00) or +DURATION from now (+2h); default: now")
	f.cron = fs.String("cron", "", "run on a schedule: five cron fields (minute hour day month weekday), e.g. \"0 4 * * *\", or @daily")
	f.tz = fs.String("tz", "", "the schedule's IANA time zone, e.g. Europe/Berlin; default UTC")
	f.deadline = fs.String("deadline", "", "a job not started by `TIME` (RFC 3339 or +DURATION) expires; a schedule ends there")
	f.window = fs.Duration("window", 0, "a recurring run later than this after its time is skipped, counted missed (default: any lateness)")
	fs.Var(&f.after, "after", "run after job `ID` succeeded (ID:ended: after it ended, however); repeat for more")
	f.attempts = fs.Int("attempts", 1, "attempts per run before it fails")
	f.backoff = fs.Duration("backoff", 10*time.Second, "wait after a failed attempt, doubled at each (at most an hour)")
	f.retry = fs.Bool("retry-interrupted", false, "run the job again if the device stopped while it ran (a power cut); default: reported interrupted")
	f.keyPath = fs.String("key", envOr("TERN_KEY", ""), "private key to sign the job with (or $TERN_KEY); devices with trusted_keys need it")
}

// apply sets on env what the flags given say (all of them for a new job,
// only those set on the command line for an edit).
func (f *jobFlags) apply(fs *flag.FlagSet, env *fleet.JobEnvelope, now time.Time, all bool) error {
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	given := func(name string) bool { return all || set[name] }
	if given("module") {
		env.Module = *f.module
	}
	if given("command") {
		env.Job = *f.command
	}
	if set["args"] || set["arg"] {
		var base json.RawMessage // an edit's --arg changes one argument, keeping the others
		if !all && !set["args"] {
			base = env.Args
		}
		args, err := f.readArgs(base)
		if err != nil {
			return err
		}
		env.Args = args
	}
	if given("at") {
		t, err := whenFlag("--at", *f.at, now)
		if err != nil {
			return err
		}
		env.NotBefore = t
	}
	if given("cron") {
		env.Cron = *f.cron
	}
	if given("tz") {
		env.TZ = *f.tz
	}
	if given("deadline") {
		t, err := whenFlag("--deadline", *f.deadline, now)
		if err != nil {
			return err
		}
		env.Deadline = t
	}
	if given("window") {
		env.Window = fleet.Duration(*f.window)
	}
	if given("after") {
		env.After = nil
		for _, a := range f.after {
			id, when, _ := strings.Cut(a, ":")
			if when != "" && when != "ended" && when != "succeeded" {
				return usageError{fmt.Errorf("--after %s: write ID (after it succeeded) or ID:ended (after it ended, however)", a)}
			}
			env.After = append(env.After, fleet.JobDep{Job: id, When: when})
		}
	}
	if given("attempts") {
		env.Attempts = *f.attempts
	}
	if given("backoff") {
		env.Backoff = fleet.Duration(*f.backoff)
	}
	if given("retry-interrupted") {
		env.RetryInterrupted = *f.retry
	}
	if env.Cron != "" && env.NotBefore.IsZero() {
		env.NotBefore = now.UTC().Truncate(time.Second) // the schedule starts with the submission
	}
	return nil
}

// readArgs reads --args and --arg into one JSON object, over base (an
// edited job's arguments; nil for none).
func (f *jobFlags) readArgs(base json.RawMessage) (json.RawMessage, error) {
	obj := map[string]json.RawMessage{}
	if len(base) > 0 {
		if err := json.Unmarshal(base, &obj); err != nil {
			return nil, fmt.Errorf("the job's arguments on the broker are not a JSON object: %w", err)
		}
	}
	if *f.args != "" {
		doc, _, err := readDocArg("--args", *f.args)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(doc, &obj); err != nil {
			return nil, usageError{fmt.Errorf("--args: the arguments are a JSON object, e.g. '{\"relay\":\"door\",\"ms\":500}': %w", err)}
		}
	}
	for _, kv := range f.argKV {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageError{fmt.Errorf("--arg %q: write KEY=VALUE, e.g. --arg ms=500", kv)}
		}
		if json.Valid([]byte(v)) {
			obj[k] = json.RawMessage(v)
		} else {
			obj[k] = mustJSON(v)
		}
	}
	return mustJSON(obj), nil
}

// whenFlag reads a time flag: RFC 3339, or +DURATION from now.
func whenFlag(name, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, ok := strings.CutPrefix(v, "+"); ok {
		dur, err := time.ParseDuration(d)
		if err != nil || dur < 0 {
			return time.Time{}, usageError{fmt.Errorf("%s %s: +DURATION is a positive Go duration, e.g. +90m or +2h", name, v)}
		}
		return now.Add(dur).UTC().Truncate(time.Second), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, usageError{fmt.Errorf("%s %q: write a time as RFC 3339 with its zone, e.g. 2026-12-07T04:00:00+01:00, or +DURATION from now, e.g. +2h", name, v)}
	}
	return t, nil
}

func jobSubmit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("job submit", stderr)
	var ff fleetFlags
	ff.register(fs)
	device := fs.String("device", "", "the device that runs the job (this or --group)")
	group := fs.String("group", "", "the group whose devices run the job, now and later members too")
	id := fs.String("id", "", "the job's id; default: a new one, sortable by time (printed)")
	var jf jobFlags
	jf.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("job submit takes no arguments, got %q; give the command's arguments with --args or --arg", fs.Arg(0))}
	}
	if (*device == "") == (*group == "") {
		return usageError{errors.New("job submit needs one of --device ID or --group NAME")}
	}
	if *jf.module == "" || *jf.command == "" {
		return usageError{errors.New("job submit needs --module and --command: the module command the job runs")}
	}
	name, scope, flagName := *device, fleet.DeviceScope(*device), "--device"
	if *group != "" {
		name, scope, flagName = *group, fleet.GroupScope(*group), "--group"
	}
	if err := fleet.ValidID(name); err != nil {
		return usageError{fmt.Errorf("%s: %w", flagName, err)}
	}
	now := time.Now()
	env := fleet.JobEnvelope{Format: fleet.Format, Version: 1, ID: *id, Issued: now.UTC()}
	if env.ID == "" {
		env.ID = fleet.NewJobID(now)
	}
	if err := jf.apply(fs, &env, now, true); err != nil {
		return err
	}
	if env.Args == nil {
		env.Args = json.RawMessage(`{}`)
	}
	if err := publishJob(ctx, &ff, jf, scope, &env); err != nil {
		return err
	}
	fmt.Fprintln(stdout, env.ID)
	fmt.Fprintf(stderr, "job %s submitted to %s: %s.%s %s; see it with tern job status %s\n", env.ID, scope, env.Module, env.Job, when(env), env.ID)
	return nil
}

// when says in words when a job runs.
func when(env fleet.JobEnvelope) string {
	var s string
	switch {
	case env.Cron != "":
		tz := env.TZ
		if tz == "" {
			tz = "UTC"
		}
		s = fmt.Sprintf("on %q (%s) from %s", env.Cron, tz, env.NotBefore.Format(time.RFC3339))
	case !env.NotBefore.IsZero():
		s = "at " + env.NotBefore.Format(time.RFC3339)
	default:
		s = "now"
	}
	for _, d := range env.After {
		s += ", after " + d.Job
		if d.When == "ended" {
			s += " ended"
		}
	}
	if !env.Deadline.IsZero() {
		s += ", by " + env.Deadline.Format(time.RFC3339)
	}
	return s
}

// publishJob signs env for the job scope of scope when a key is given,
// and publishes it retained.
func publishJob(ctx context.Context, ff *fleetFlags, jf jobFlags, scope string, env *fleet.JobEnvelope) error {
	if err := ff.check(); err != nil {
		return err
	}
	topics := fleet.Topics{Prefix: ff.prefix, Fleet: ff.fleet}
	if err := topics.Validate(); err != nil {
		return usageError{err}
	}
	env.SetTopics(topics)
	if _, err := fleet.ParseJobEnvelope(mustJSON(env)); err != nil {
		return usageError{err}
	}
	if *jf.keyPath != "" {
		var priv ed25519.PrivateKey
		priv, err := readKey(*jf.keyPath)
		if err != nil {
			return err
		}
		if err := env.Sign(fleet.JobScope(scope, env.ID), priv); err != nil {
			return err
		}
	}
	op, err := ff.dial(ctx)
	if err != nil {
		return err
	}
	defer op.Close()
	return op.SubmitJob(ctx, scope, *env)
}

// retainedJob reads job id from the broker: exactly one.
func retainedJob(ctx context.Context, op *fleet.Operator, id string, wait time.Duration) (fleet.ScopedJob, error) {
	if err := fleet.ValidID(id); err != nil {
		return fleet.ScopedJob{}, usageError{fmt.Errorf("job id: %w", err)}
	}
	js, err := op.RetainedJobs(ctx, id, wait)
	if err != nil {
		return fleet.ScopedJob{}, err
	}
	switch len(js) {
	case 0:
		return fleet.ScopedJob{}, fmt.Errorf("no job %s retained on the broker for this fleet; tern job ls lists them", id)
	case 1:
		return js[0], nil
	}
	var scopes []string
	for _, j := range js {
		scopes = append(scopes, j.Scope)
	}
	return fleet.ScopedJob{}, fmt.Errorf("job %s is retained for %s: one id, several jobs; cancel them and submit with new ids", id, strings.Join(scopes, " and "))
}

// targetOf is the device or group scope of a job's scope.
func targetOf(jobScope string) string { s, _, _ := strings.Cut(jobScope, "/job/"); return s }

func jobEditOrCancel(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) error {
	fs := newFlags(cmd, stderr)
	var ff fleetFlags
	ff.register(fs)
	var jf jobFlags
	if cmd == "job edit" {
		jf.register(fs)
	} else {
		jf.keyPath = fs.String("key", envOr("TERN_KEY", ""), "private key to sign the cancel with (or $TERN_KEY); devices with trusted_keys need it")
	}
	wait := fs.Duration("wait", defaultSettle, "read the retained job for at most this long")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{fmt.Errorf("%s needs the job's id (tern job ls lists them)", cmd)}
	}
	if err := ff.check(); err != nil {
		return err
	}
	op, err := ff.dial(ctx)
	if err != nil {
		return err
	}
	j, err := retainedJob(ctx, op, fs.Arg(0), *wait)
	op.Close()
	if err != nil {
		return err
	}
	env := j.JobEnvelope
	if env.Canceled {
		return fmt.Errorf("job %s was canceled (version %d); submit a new job instead", env.ID, env.Version)
	}
	env.Version++
	env.Issued, env.Key, env.Sig, env.SignedScope = time.Now().UTC(), "", nil, ""
	if cmd == "job edit" {
		if err := jf.apply(fs, &env, time.Now(), false); err != nil {
			return err
		}
	} else {
		env.Canceled = true
	}
	if err := publishJob(ctx, &ff, jf, targetOf(j.Scope), &env); err != nil {
		return err
	}
	what := "edited: devices that have not started it take version"
	if env.Canceled {
		what = "canceled: devices that have not ended it cancel it, at version"
	}
	fmt.Fprintf(stdout, "job %s %s %d (%s); tern job status %s shows each device's answer\n", env.ID, what, env.Version, targetOf(j.Scope), env.ID)
	return nil
}

func jobEdit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return jobEditOrCancel(ctx, "job edit", args, stdout, stderr)
}

func jobCancel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return jobEditOrCancel(ctx, "job cancel", args, stdout, stderr)
}

// jobLsRow is one job in tern job ls --json.
type jobLsRow struct {
	ID       string `json:"id"`
	Scope    string `json:"scope"`
	Version  uint64 `json:"version"`
	Module   string `json:"module"`
	Command  string `json:"command"`
	When     string `json:"when"`
	Canceled bool   `json:"canceled,omitempty"`
	Signed   bool   `json:"signed"`
}

func jobLs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("job ls", stderr)
	var ff fleetFlags
	ff.register(fs)
	asJSON := fs.Bool("json", false, "print one JSON array of jobs")
	wait := fs.Duration("wait", defaultSettle, "read the retained jobs for at most this long (less when they stop coming)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("job ls takes no arguments, got %q", fs.Arg(0))}
	}
	op, err := ff.dial(ctx)
	if err != nil {
		return err
	}
	defer op.Close()
	js, err := op.RetainedJobs(ctx, "", quietWait(*wait))
	if err != nil {
		return err
	}
	rows := make([]jobLsRow, 0, len(js))
	for _, j := range js {
		rows = append(rows, jobLsRow{ID: j.ID, Scope: targetOf(j.Scope), Version: j.Version, Module: j.Module, Command: j.Job, When: when(j.JobEnvelope), Canceled: j.Canceled, Signed: j.Key != ""})
	}
	if *asJSON {
		fmt.Fprintln(stdout, string(mustJSON(rows)))
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tFOR\tVERSION\tRUNS\tWHEN")
	for _, r := range rows {
		w := r.When
		if r.Canceled {
			w = "canceled"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s.%s\t%s\n", r.ID, r.Scope, r.Version, r.Module, r.Command, w)
	}
	tw.Flush()
	if len(rows) == 0 {
		fmt.Fprintf(stderr, "no job retained for fleet %s on %s\n", ff.fleet, ff.broker)
	}
	return nil
}

// quietWait bounds a collection of retained messages: they come back to
// back after the subscription, so settleQuiet without one ends it.
func quietWait(wait time.Duration) time.Duration { return min(wait, settleQuiet) }

// jobStatusRow is one device in tern job status --json.
type jobStatusRow struct {
	Device string `json:"device"`
	// Online is null when the device never published its online flag.
	Online *bool `json:"online"`
	// Phase is the job's phase on the device, or "unreported": the
	// device is in the scope (its state report lists the group) and has
	// not reported the job (offline since it was submitted, or a ternd
	// without jobs).
	Phase   string          `json:"phase"`
	Version uint64          `json:"version,omitempty"`
	Attempt int             `json:"attempt,omitempty"`
	Why     string          `json:"why,omitempty"`
	Next    *time.Time      `json:"next,omitempty"`
	Started *time.Time      `json:"started,omitempty"`
	Ended   *time.Time      `json:"ended,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   string          `json:"error,omitempty"`
	Missed  int             `json:"missed,omitempty"`
	Runs    []api.JobRun    `json:"runs,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func jobStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("job status", stderr)
	var ff fleetFlags
	ff.register(fs)
	asJSON := fs.Bool("json", false, "print one JSON object: the job, each device's status and the totals")
	wait := fs.Duration("wait", defaultSettle, "collect retained reports for at most this long (less when they stop coming)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{errors.New("job status needs the job's id (tern job ls lists them)")}
	}
	op, err := ff.dial(ctx)
	if err != nil {
		return err
	}
	defer op.Close()
	j, err := retainedJob(ctx, op, fs.Arg(0), quietWait(*wait))
	if err != nil {
		return err
	}
	rows, err := jobRows(ctx, op, j, *wait, nil)
	if err != nil {
		return err
	}
	totals := map[string]int{}
	for _, r := range rows {
		totals[r.Phase]++
	}
	if *asJSON {
		fmt.Fprintln(stdout, string(mustJSON(struct {
			Job     fleet.JobEnvelope `json:"job"`
			For     string            `json:"for"`
			Devices []jobStatusRow    `json:"devices"`
			Totals  map[string]int    `json:"totals"`
		}{j.JobEnvelope, targetOf(j.Scope), rows, totals})))
	} else {
		printJobStatus(stdout, j, rows, totals)
	}
	var notDone, failed []string
	for _, r := range rows {
		switch {
		case r.Phase == "succeeded":
		case api.JobEnded(r.Phase):
			failed = append(failed, r.Device+" ("+r.Phase+")")
		default:
			notDone = append(notDone, r.Device+" ("+r.Phase+")")
		}
	}
	switch {
	case len(rows) == 0:
		return jobFailedError{fmt.Errorf("no device of %s has reported: none is in the scope yet (a group's members list it in their state reports), or none has run a ternd that takes jobs", targetOf(j.Scope))}
	case j.Cron != "":
		return nil // a recurring job does not end; its runs are in the table
	case len(failed) > 0:
		return jobFailedError{fmt.Errorf("%d of %d devices ended job %s without success: %s", len(failed), len(rows), j.ID, firstN(failed, 10))}
	case len(notDone) > 0:
		return notConvergedError{fmt.Errorf("%d of %d devices have not ended job %s: %s", len(notDone), len(rows), j.ID, firstN(notDone, 10))}
	}
	return nil
}

func firstN(s []string, n int) string {
	if len(s) > n {
		s = append(s[:n:n], fmt.Sprintf("and %d more", len(s)-n))
	}
	return strings.Join(s, ", ")
}

// jobRows reads each device's status of job j, and for a group job the
// group's devices (from their state reports) that have not reported it.
func jobRows(ctx context.Context, op *fleet.Operator, j fleet.ScopedJob, wait time.Duration, where selection) ([]jobStatusRow, error) {
	statuses, err := op.JobStatuses(ctx, j.ID, quietWait(wait))
	if err != nil {
		return nil, err
	}
	target := targetOf(j.Scope)
	kind, name, _ := strings.Cut(target, "/")
	device, group := fleet.AnyDevice, ""
	if kind == "device" {
		device = name
	} else {
		group = name
	}
	r := newRoster(group)
	r.where = where
	if err := collect(ctx, op, device, wait, r); err != nil {
		return nil, fmt.Errorf("reading device reports: %w", err)
	}
	byDevice := map[string]jobStatusRow{}
	for _, m := range r.list() {
		byDevice[m.id] = jobStatusRow{Device: m.id, Online: m.online, Phase: "unreported"}
	}
	for _, s := range statuses {
		if s.Scope != j.Scope {
			continue // the same id for another scope: not this job
		}
		if m := r.members[s.Device]; len(where) > 0 && (m == nil || !where.matches(m.id, m.state)) {
			continue // not selected (--where), or nothing known of it to select by
		}
		row := byDevice[s.Device]
		row.Device, row.Phase, row.Version, row.Attempt, row.Why = s.Device, s.Phase, s.Version, s.Attempt, s.Why
		row.Next, row.Started, row.Ended = timePtr(s.Next), timePtr(s.Started), timePtr(s.Ended)
		row.Result, row.Error, row.Missed, row.Runs = s.Result, s.Error, s.Missed, s.Runs
		if m, ok := r.members[s.Device]; ok {
			row.Online = m.online
		}
		byDevice[s.Device] = row
	}
	rows := make([]jobStatusRow, 0, len(byDevice))
	for _, row := range byDevice {
		rows = append(rows, row)
	}
	slices.SortFunc(rows, func(a, b jobStatusRow) int { return strings.Compare(a.Device, b.Device) })
	return rows, nil
}

func printJobStatus(w io.Writer, j fleet.ScopedJob, rows []jobStatusRow, totals map[string]int) {
	fmt.Fprintf(w, "job %s version %d for %s: %s.%s %s\n", j.ID, j.Version, targetOf(j.Scope), j.Module, j.Job, when(j.JobEnvelope))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tONLINE\tPHASE\tATTEMPT\tSTARTED\tENDED\tRESULT / WHY")
	for _, r := range rows {
		online := onlineWord(r.Online)
		detail := r.Why
		switch {
		case r.Error != "":
			detail = r.Error
		case len(r.Result) > 0:
			detail = string(r.Result)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Device, online, r.Phase, dashZero(r.Attempt), stamp(r.Started), stamp(r.Ended), cutLine(detail, maxErrorColumn))
	}
	tw.Flush()
	var parts []string
	for _, p := range []string{"succeeded", "failed", "expired", "canceled", "interrupted", "running", "waiting", "waiting_clock", "waiting_dependency", "queued", "unreported"} {
		if n := totals[p]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, p))
		}
	}
	fmt.Fprintf(w, "%d devices: %s\n", len(rows), strings.Join(parts, ", "))
}

func dashZero(n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

func stamp(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format("01-02 15:04:05Z")
}

// cutLine is the first line of s, cut to n characters.
func cutLine(s string, n int) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if r := []rune(s); len(r) > n {
		s = string(r[:n-1]) + "…"
	}
	return s
}

func jobWho(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("job who", stderr)
	var ff fleetFlags
	ff.register(fs)
	group := fs.String("group", "", "the devices a job for this group reaches (instead of a job id)")
	where := whereFlag(fs)
	asJSON := fs.Bool("json", false, "print one JSON array of devices")
	wait := fs.Duration("wait", defaultSettle, "collect retained reports for at most this long")
	if err := parse(fs, args); err != nil {
		return err
	}
	if (fs.NArg() == 1) == (*group != "") {
		return usageError{errors.New("job who needs a job id, or --group NAME")}
	}
	op, err := ff.dial(ctx)
	if err != nil {
		return err
	}
	defer op.Close()
	var rows []jobStatusRow
	if *group != "" {
		if err := fleet.ValidID(*group); err != nil {
			return usageError{fmt.Errorf("--group: %w", err)}
		}
		r := newRoster(*group)
		r.where = *where
		if err := collect(ctx, op, fleet.AnyDevice, *wait, r); err != nil {
			return fmt.Errorf("reading device reports: %w", err)
		}
		for _, m := range r.list() {
			rows = append(rows, jobStatusRow{Device: m.id, Online: m.online, Phase: "-"})
		}
	} else {
		j, err := retainedJob(ctx, op, fs.Arg(0), quietWait(*wait))
		if err != nil {
			return err
		}
		if rows, err = jobRows(ctx, op, j, *wait, *where); err != nil {
			return err
		}
	}
	if *asJSON {
		fmt.Fprintln(stdout, string(mustJSON(rows)))
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tONLINE\tJOB")
	for _, r := range rows {
		online := onlineWord(r.Online)
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Device, online, r.Phase)
	}
	tw.Flush()
	fmt.Fprintf(stderr, "%d devices (a group's members as their state reports list it; a device that never reported is not known)\n", len(rows))
	return nil
}
