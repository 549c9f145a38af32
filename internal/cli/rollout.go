package cli

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/runtime/api"
	"github.com/tern-iot/tern/runtime/window"
)

// ExitRolloutFailed is tern rollout status's and watch's answer when the
// rollout was aborted or some device failed it.
const ExitRolloutFailed = ExitJobFailed

// rolloutFlags are the flags tern rollout start adds to those of the push
// or release it makes: the policy devices follow.
type rolloutFlags struct {
	id, waves, start, abortFailed *string
	interval, deferMax            *time.Duration
	disruptive                    *bool
	windows                       multiFlag
	abortAfter                    *int
}

func (rf *rolloutFlags) register(fs *flag.FlagSet) {
	rf.id = fs.String("id", "", "the rollout's `ID` (it decides each device's wave); default: the module or group and the time")
	rf.waves = fs.String("waves", "10%,50%,100%", "cumulative shares of the devices in scope, one per wave, the last 100%, e.g. 1%,10%,50%,100%")
	rf.interval = fs.Duration("interval", time.Hour, "time between waves, by each device's clock")
	rf.start = fs.String("start", "", "when the first wave opens: RFC 3339 or +DURATION from now; default now")
	rf.disruptive = fs.Bool("disruptive", false, "devices wait for a maintenance window (--window, else their update_policy) and for their busy sensors to clear")
	fs.Var(&rf.windows, "window", "a maintenance window for this change, `\"[DAYS ]HH:MM-HH:MM[ ZONE]\"`, e.g. \"sat,sun 02:00-05:00 Europe/Berlin\"; repeat for more; replaces the devices' own (implies --disruptive)")
	rf.deferMax = fs.Duration("defer-max", 0, "how long a busy device may defer the change (default: its update_policy.defer_max)")
	rf.abortFailed = fs.String("abort-failed", "", "tern rollout watch --auto-abort aborts when more than this share of the finished devices failed, e.g. 5%")
	rf.abortAfter = fs.Int("abort-after", 10, "... once at least this many devices have finished (succeeded or failed)")
}

// build makes the rollout the flags say; name seeds the default id.
func (rf *rolloutFlags) build(now time.Time, name string) (*fleet.Rollout, error) {
	ro := &fleet.Rollout{ID: *rf.id, Interval: fleet.Duration(*rf.interval), Disruptive: *rf.disruptive, DeferMax: fleet.Duration(*rf.deferMax)}
	if ro.ID == "" {
		ro.ID = name + "-" + now.UTC().Format("20060102-150405")
	}
	waves, err := parseWaves(*rf.waves)
	if err != nil {
		return nil, err
	}
	ro.Waves = waves
	if ro.Start, err = whenFlag("--start", *rf.start, now); err != nil {
		return nil, err
	}
	if ro.Start.IsZero() {
		ro.Start = now.UTC().Truncate(time.Second)
	}
	for _, w := range rf.windows {
		win, err := parseWindowFlag(w)
		if err != nil {
			return nil, err
		}
		ro.Windows = append(ro.Windows, win)
		ro.Disruptive = true
	}
	if *rf.abortFailed != "" {
		p, err := parseShare(*rf.abortFailed)
		if err != nil {
			return nil, usageError{fmt.Errorf("--abort-failed %q: %w", *rf.abortFailed, err)}
		}
		ro.Abort = &fleet.AbortRule{FailedPercent: p * 100, MinFinished: *rf.abortAfter}
	}
	if err := ro.Check(); err != nil {
		return nil, usageError{fmt.Errorf("the rollout: %w", err)}
	}
	return ro, nil
}

// parseShare reads "5%" or "0.05" as a fraction.
func parseShare(s string) (float64, error) {
	pct := strings.HasSuffix(s, "%")
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err != nil {
		return 0, errors.New("write a percentage such as 5% or a fraction such as 0.05")
	}
	if pct {
		v /= 100
	}
	if v < 0 || v > 1 {
		return 0, errors.New("a share is 0% to 100%")
	}
	return v, nil
}

// parseWaves reads "1%,10%,50%,100%" (or fractions) as cumulative shares.
func parseWaves(s string) ([]float64, error) {
	var out []float64
	for p := range strings.SplitSeq(s, ",") {
		v, err := parseShare(strings.TrimSpace(p))
		if err != nil {
			return nil, usageError{fmt.Errorf("--waves %q: %v (each wave's cumulative share, the last 100%%)", s, err)}
		}
		out = append(out, v)
	}
	return out, nil
}

// parseWindowFlag reads "[DAYS ]HH:MM-HH:MM[ ZONE]".
func parseWindowFlag(s string) (window.Window, error) {
	var spec window.Spec
	fields := strings.Fields(s)
	for _, f := range fields {
		switch {
		case strings.Contains(f, ":") && strings.Contains(f, "-"):
			spec.From, spec.To, _ = strings.Cut(f, "-")
		case strings.Contains(f, "/") || f == "UTC":
			spec.Zone = f
		default:
			spec.Days = strings.Split(f, ",")
		}
	}
	w, err := window.Parse(spec)
	if err != nil || spec.From == "" {
		if err == nil {
			err = errors.New("no HH:MM-HH:MM")
		}
		return window.Window{}, usageError{fmt.Errorf("--window %q: %v; write e.g. \"sat,sun 02:00-05:00 Europe/Berlin\"", s, err)}
	}
	return w, nil
}

// startControl publishes the running control of a rollout, signed with
// priv (nil: unsigned), before the change it governs.
func startControl(ctx context.Context, op *fleet.Operator, topics fleet.Topics, ro *fleet.Rollout, what, scope string, priv ed25519.PrivateKey) error {
	c := fleet.RolloutControl{Format: fleet.Format, Rollout: ro.ID, Version: uint64(time.Now().UnixMilli()), State: fleet.RolloutRunning,
		Reason: "started", What: what, Scope: scope, Policy: ro, Issued: time.Now().UTC()}
	c.SetTopics(topics)
	if priv != nil {
		c.Sign(priv)
	}
	return op.PublishRolloutControl(ctx, c)
}

// describeRollout says in words when the waves open.
func describeRollout(ro *fleet.Rollout) string {
	var waves []string
	for i, w := range ro.Waves {
		waves = append(waves, fmt.Sprintf("%g%% at %s", w*100, ro.Opens(i).UTC().Format(time.RFC3339)))
	}
	s := fmt.Sprintf("rollout %s: %d waves (%s)", ro.ID, len(ro.Waves), strings.Join(waves, ", "))
	if ro.Disruptive {
		s += "; disruptive: devices wait for a maintenance window and their busy sensors"
	}
	if ro.Abort != nil {
		s += "; abort rule: " + ro.Abort.String()
	}
	return s
}

func rolloutStart(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	for _, a := range args {
		if a == "--agent" || a == "-agent" || strings.HasPrefix(a, "--agent=") || strings.HasPrefix(a, "-agent=") {
			return agentReleaseWith(ctx, "rollout start", args, stdout, stderr, &rolloutFlags{})
		}
	}
	for _, a := range args {
		if a == "--module" || strings.HasPrefix(a, "--module=") || a == "-module" || strings.HasPrefix(a, "-module=") {
			return releaseWith(ctx, "rollout start", args, stdout, stderr, &rolloutFlags{})
		}
	}
	return pushOrSignWith(ctx, "rollout start", args, stdout, stderr, &rolloutFlags{})
}

// rolloutControl publishes the next control of a rollout: pause, resume or
// abort.
func rolloutControl(ctx context.Context, cmd string, state fleet.RolloutState, args []string, stdout, stderr io.Writer) error {
	fs := newFlags(cmd, stderr)
	var ff fleetFlags
	ff.register(fs)
	keyPath := fs.String("key", envOr("TERN_KEY", ""), "private key to sign the control with (or $TERN_KEY); devices with trusted_keys need it")
	reason := fs.String("reason", "", "why, for the devices' reports and the operators who read them")
	wait := fs.Duration("wait", defaultSettle, "read the retained control for at most this long")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{fmt.Errorf("%s needs the rollout's id (tern rollout ls lists them)", cmd)}
	}
	op, err := ff.dial(ctx)
	if err != nil {
		return err
	}
	defer op.Close()
	c, err := retainedControl(ctx, op, fs.Arg(0), *wait)
	if err != nil {
		return err
	}
	if c.State == fleet.RolloutAborted {
		return fmt.Errorf("rollout %s was aborted (%s); devices refuse to resume it: start a new rollout", c.Rollout, orDash(c.Reason))
	}
	var priv ed25519.PrivateKey
	if *keyPath != "" {
		if priv, err = readKey(*keyPath); err != nil {
			return err
		}
	}
	why := *reason
	if why == "" {
		why = strings.TrimPrefix(cmd, "rollout ") + " by an operator"
	}
	if err := publishControl(ctx, op, c, state, why, priv); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rollout %s %s (%s); tern rollout status %s shows each device\n", c.Rollout, state, why, c.Rollout)
	return nil
}

// publishControl publishes the control after c with state and reason.
func publishControl(ctx context.Context, op *fleet.Operator, c fleet.RolloutControl, state fleet.RolloutState, reason string, priv ed25519.PrivateKey) error {
	c.Version = max(c.Version+1, uint64(time.Now().UnixMilli()))
	c.State, c.Reason, c.Issued, c.Key, c.Sig = state, clipReason(reason), time.Now().UTC(), "", nil
	if priv != nil {
		c.Sign(priv)
	}
	return op.PublishRolloutControl(ctx, c)
}

func clipReason(s string) string {
	if len(s) > fleet.MaxReason {
		return s[:fleet.MaxReason-3] + "..."
	}
	return s
}

func rolloutPause(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return rolloutControl(ctx, "rollout pause", fleet.RolloutPaused, args, stdout, stderr)
}

func rolloutResume(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return rolloutControl(ctx, "rollout resume", fleet.RolloutRunning, args, stdout, stderr)
}

func rolloutAbort(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return rolloutControl(ctx, "rollout abort", fleet.RolloutAborted, args, stdout, stderr)
}

// retainedControl reads rollout id's control from the broker.
func retainedControl(ctx context.Context, op *fleet.Operator, id string, wait time.Duration) (fleet.RolloutControl, error) {
	if err := fleet.ValidID(id); err != nil {
		return fleet.RolloutControl{}, usageError{fmt.Errorf("rollout id: %w", err)}
	}
	cs, err := op.RetainedRolloutControls(ctx, id, quietWait(wait))
	if err != nil {
		return fleet.RolloutControl{}, err
	}
	if len(cs) == 0 {
		return fleet.RolloutControl{}, fmt.Errorf("no rollout %s retained on the broker for this fleet; tern rollout ls lists them", id)
	}
	return cs[0], nil
}

// rolloutRow is one device in tern rollout status --json.
type rolloutRow struct {
	fleet.RolloutDevice
	Online *bool `json:"online"`
}

// rolloutRows reads the devices in the scope of c (a group's members, a
// device, or the devices that run a module) and where each is with it.
func rolloutRows(ctx context.Context, op *fleet.Operator, c fleet.RolloutControl, wait time.Duration) ([]rolloutRow, error) {
	r := newRoster("")
	if err := collect(ctx, op, scopeDevice(c), wait, r); err != nil {
		return nil, fmt.Errorf("reading device reports: %w", err)
	}
	return rowsOf(r, c), nil
}

// scopeDevice is the device whose reports a rollout's counts read: the
// one its scope names, or every device (which DeviceOf then sorts).
func scopeDevice(c fleet.RolloutControl) string {
	if kind, name, _ := strings.Cut(c.Scope, "/"); kind == "device" {
		return name
	}
	return fleet.AnyDevice
}

func rowsOf(r *roster, c fleet.RolloutControl) []rolloutRow {
	var rows []rolloutRow
	for _, m := range r.list() {
		if m.state == nil {
			continue
		}
		if d, ok := c.DeviceOf(*m.state); ok {
			rows = append(rows, rolloutRow{RolloutDevice: d, Online: m.online})
		}
	}
	return rows
}

func countRollout(c fleet.RolloutControl, rows []rolloutRow) fleet.RolloutCounts {
	ds := make([]fleet.RolloutDevice, len(rows))
	for i, r := range rows {
		ds[i] = r.RolloutDevice
	}
	return c.Count(ds)
}

var rolloutPhases = []api.RolloutPhase{api.RolloutSucceeded, api.RolloutFailed, api.RolloutApplying, api.RolloutDeferred, api.RolloutWaiting, api.RolloutHalted, api.RolloutAborted, api.RolloutReplaced, fleet.RolloutUnreported}

func countsText(m map[api.RolloutPhase]int) string {
	var parts []string
	total := 0
	for _, p := range rolloutPhases {
		if n := m[p]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, p))
			total += n
		}
	}
	if total == 0 {
		return "no device"
	}
	return fmt.Sprintf("%d: %s", total, strings.Join(parts, ", "))
}

func printRolloutCounts(w io.Writer, c fleet.RolloutControl, counts fleet.RolloutCounts) {
	fmt.Fprintf(w, "rollout %s (%s, %s): %s", c.Rollout, orDash(c.What), c.Scope, c.State)
	if c.Reason != "" {
		fmt.Fprintf(w, " (%s)", c.Reason)
	}
	fmt.Fprintln(w)
	for i, m := range counts.Waves {
		opens := ""
		if c.Policy != nil {
			opens = fmt.Sprintf(" (%g%%, opens %s)", c.Policy.Waves[i]*100, c.Policy.Opens(i).UTC().Format(time.RFC3339))
		}
		fmt.Fprintf(w, "  wave %d%s: %s\n", i+1, opens, countsText(m))
	}
	fmt.Fprintf(w, "  all: %s\n", countsText(counts.Totals))
}

// rolloutVerdict is the exit status of a rollout's counts.
func rolloutVerdict(c fleet.RolloutControl, counts fleet.RolloutCounts, rows []rolloutRow) error {
	succeeded, failed := counts.Finished()
	var notDone []string
	for _, r := range rows {
		if !r.Phase.Finished() {
			notDone = append(notDone, fmt.Sprintf("%s (%s)", r.Device, r.Phase))
		}
	}
	switch {
	case c.State == fleet.RolloutAborted:
		return jobFailedError{fmt.Errorf("rollout %s was aborted: %s (%d succeeded, %d failed)", c.Rollout, orDash(c.Reason), succeeded, failed)}
	case failed > 0:
		return jobFailedError{fmt.Errorf("%d of %d devices failed rollout %s", failed, len(rows), c.Rollout)}
	case len(rows) == 0:
		return notConvergedError{fmt.Errorf("no device in the scope of rollout %s (%s) has reported", c.Rollout, c.Scope)}
	case len(notDone) > 0:
		return notConvergedError{fmt.Errorf("%d of %d devices have not finished rollout %s: %s", len(notDone), len(rows), c.Rollout, firstN(notDone, 10))}
	}
	return nil
}

func rolloutStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("rollout status", stderr)
	var ff fleetFlags
	ff.register(fs)
	asJSON := fs.Bool("json", false, "print one JSON object: the rollout, its counts by wave and each device")
	devices := fs.Bool("devices", false, "list each device too")
	wait := fs.Duration("wait", defaultSettle, "collect retained reports for at most this long")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{errors.New("rollout status needs the rollout's id (tern rollout ls lists them)")}
	}
	op, err := ff.dial(ctx)
	if err != nil {
		return err
	}
	defer op.Close()
	c, err := retainedControl(ctx, op, fs.Arg(0), *wait)
	if err != nil {
		return err
	}
	rows, err := rolloutRows(ctx, op, c, *wait)
	if err != nil {
		return err
	}
	counts := countRollout(c, rows)
	if *asJSON {
		fmt.Fprintln(stdout, string(mustJSON(struct {
			Rollout fleet.RolloutControl `json:"rollout"`
			Counts  fleet.RolloutCounts  `json:"counts"`
			Devices []rolloutRow         `json:"devices"`
		}{c, counts, rows})))
	} else {
		printRolloutCounts(stdout, c, counts)
		if *devices {
			printRolloutRows(stdout, rows)
		}
	}
	return rolloutVerdict(c, counts, rows)
}

func printRolloutRows(w io.Writer, rows []rolloutRow) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tONLINE\tWAVE\tPHASE\tSINCE\tWHY")
	for _, r := range rows {
		online := onlineWord(r.Online)
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", r.Device, online, r.Wave, r.Phase, stamp(timePtr(r.Since)), cutLine(r.Why, maxErrorColumn))
	}
	tw.Flush()
}

func rolloutLs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("rollout ls", stderr)
	var ff fleetFlags
	ff.register(fs)
	asJSON := fs.Bool("json", false, "print one JSON array of rollout controls")
	wait := fs.Duration("wait", defaultSettle, "read the retained controls for at most this long")
	if err := parse(fs, args); err != nil {
		return err
	}
	op, err := ff.dial(ctx)
	if err != nil {
		return err
	}
	defer op.Close()
	cs, err := op.RetainedRolloutControls(ctx, "", quietWait(*wait))
	if err != nil {
		return err
	}
	if *asJSON {
		fmt.Fprintln(stdout, string(mustJSON(cs)))
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLLOUT\tSTATE\tWHAT\tSCOPE\tWAVES\tREASON")
	for _, c := range cs {
		waves := "-"
		if c.Policy != nil {
			waves = strconv.Itoa(len(c.Policy.Waves))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Rollout, c.State, orDash(c.What), c.Scope, waves, cutLine(c.Reason, maxErrorColumn))
	}
	tw.Flush()
	return nil
}

// rolloutWatch follows a rollout live, from the devices' state reports;
// with --auto-abort it aborts it when its abort rule trips.
func rolloutWatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("rollout watch", stderr)
	var ff fleetFlags
	ff.register(fs)
	autoAbort := fs.Bool("auto-abort", false, "abort the rollout (a signed control, with --key) when its abort rule trips")
	keyPath := fs.String("key", envOr("TERN_KEY", ""), "private key to sign the abort with (or $TERN_KEY)")
	timeout := fs.Duration("timeout", 0, "give up after this long (exit 4 if not finished); 0 waits until every device finished or the rollout was aborted")
	wait := fs.Duration("wait", defaultSettle, "read the retained control for at most this long")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{errors.New("rollout watch needs the rollout's id")}
	}
	var priv ed25519.PrivateKey
	var err error
	if *keyPath != "" {
		if priv, err = readKey(*keyPath); err != nil {
			return err
		}
	}
	op, err := ff.dial(ctx)
	if err != nil {
		return err
	}
	defer op.Close()
	c, err := retainedControl(ctx, op, fs.Arg(0), *wait)
	if err != nil {
		return err
	}
	if *autoAbort && (c.Policy == nil || c.Policy.Abort == nil) {
		return usageError{fmt.Errorf("rollout %s has no abort rule (tern rollout start --abort-failed 5%% --abort-after 20); --auto-abort needs one", c.Rollout)}
	}
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	device := scopeDevice(c)
	r := newRoster("")
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	states, err := op.WatchStates(wctx, device)
	if err != nil {
		return err
	}
	online, err := op.WatchOnline(wctx, device)
	if err != nil {
		return err
	}
	s := newSettler(*wait)
	defer s.stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := ""
	settled := false
	judge := func() (bool, error) {
		rows := rowsOf(r, c)
		counts := countRollout(c, rows)
		var b strings.Builder
		printRolloutCounts(&b, c, counts)
		if b.String() != last {
			last = b.String()
			fmt.Fprintf(stdout, "%s %s", time.Now().UTC().Format("15:04:05Z"), last)
		}
		if !settled {
			return false, nil
		}
		succeeded, failed := counts.Finished()
		if *autoAbort && c.State != fleet.RolloutAborted && c.Trips(counts) {
			why := fmt.Sprintf("auto-abort: %s (%d failed of %d finished)", c.Policy.Abort, failed, succeeded+failed)
			if err := publishControl(ctx, op, c, fleet.RolloutAborted, why, priv); err != nil {
				return true, fmt.Errorf("the abort rule tripped (%s), but the abort was not published: %w; abort it with tern rollout abort %s", why, err, c.Rollout)
			}
			c.State, c.Reason = fleet.RolloutAborted, why
			fmt.Fprintf(stdout, "rollout %s aborted: %s\n", c.Rollout, why)
			return true, rolloutVerdict(c, counts, rows)
		}
		if err := rolloutVerdict(c, counts, rows); err == nil || c.State == fleet.RolloutAborted {
			return true, err
		}
		return false, nil
	}
	for {
		select {
		case st, ok := <-states:
			if !ok {
				return timeoutOr(ctx, c)
			}
			r.addState(st)
			s.saw()
		case p, ok := <-online:
			if !ok {
				return timeoutOr(ctx, c)
			}
			r.addOnline(p)
			s.saw()
		case <-s.C():
			s.fired()
			settled = true
		case <-tick.C:
			// The control may change under the watcher (an operator's
			// pause or abort): read it again now and then.
			if cs, err := op.RetainedRolloutControls(ctx, c.Rollout, settleQuiet); err == nil && len(cs) == 1 && cs[0].Version > c.Version {
				c = cs[0]
			}
		case <-ctx.Done():
			return timeoutOr(ctx, c)
		}
		if done, err := judge(); done {
			return err
		}
	}
}

func timeoutOr(ctx context.Context, c fleet.RolloutControl) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return notConvergedError{fmt.Errorf("rollout %s has not finished (--timeout)", c.Rollout)}
	}
	return ctx.Err()
}
