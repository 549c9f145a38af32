package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/runtime"
)

// How often tern watch redraws the rollout line: in place on a terminal,
// and as a new line (only when it changed) when stdout is a file or a pipe.
const (
	redrawTTY   = 200 * time.Millisecond
	redrawLines = time.Second
)

func watch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("watch", stderr)
	var ff fleetFlags
	ff.register(fs)
	device := fs.String("device", "", "watch only this device (+ or nothing: every device)")
	group := fs.String("group", "", "watch only the devices of this group (as their state reports list it)")
	sel := whereFlag(fs)
	version := fs.Uint64("version", 0, "show the rollout of this combined target version (the target_version devices report) as one progress line; with --until-converged, only this version or a later one counts")
	minVersion := fs.Uint64("min-version", 0, "the same as --version, without the progress line")
	pushed := fs.Uint64("pushed", 0, "show the rollout of the push of version `V` to the --group or --device watched (the version tern push printed): tern reads each device's other targets and counts it converged at the combined version they make with V")
	until := fs.Bool("until-converged", false, "exit 0 once every watched device reports its target reached")
	expect := fs.Int("expect", 0, "the number of devices in the rollout, when some may not have reported yet (they count as pending)")
	timeout := fs.Duration("timeout", 0, "give up after this long (exit 3); 0 waits forever")
	asJSON := fs.Bool("json", false, `print one JSON object per line, with "type": "state", "event", "online" or "progress"`)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("watch takes no arguments, got %q; name a device with --device ID", fs.Arg(0))}
	}
	if *device == fleet.AnyDevice {
		*device = ""
	}
	scope, err := scopeFlags(*device, *group)
	if err != nil {
		return err
	}
	if *expect < 0 {
		return usageError{fmt.Errorf("--expect %d: must be 0 or more", *expect)}
	}
	pushedScope, err := pushedFlag(*pushed, *device, *group, *version, *minVersion)
	if err != nil {
		return err
	}
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	op, err := ff.dial(ctx)
	if err != nil {
		return err
	}
	defer op.Close()
	states, err := op.WatchStates(ctx, scope)
	if err != nil {
		return err
	}
	online, err := op.WatchOnline(ctx, scope)
	if err != nil {
		return err
	}
	events, err := op.WatchEvents(ctx, scope)
	if err != nil {
		return err
	}

	r := newRoster(*group)
	r.where = *sel
	w := &watcher{
		roster:      r,
		version:     max(*version, *minVersion),
		pushed:      *pushed,
		pushedScope: pushedScope,
		sources:     make(map[string]uint64),
		asked:       make(map[string]bool),
		unread:      make(map[string]bool),
		expect:      *expect,
		out:         stdout,
		json:        *asJSON,
		rollout:     *version > 0 || *pushed > 0,
		counting:    *pushed == 0,
		tty:         !*asJSON && isTerminal(stdout),
	}
	// With --pushed, the retained targets of the devices' other sources
	// are read beside the loop, one batch at a time, from when the
	// retained reports are in (so that the first batch holds them all).
	var fetches sync.WaitGroup
	defer fetches.Wait()
	fetchCtx, stopFetches := context.WithCancel(ctx)
	defer stopFetches()
	fetched := make(chan fetchResult, 1)
	fetching := false
	var retryAt time.Time
	settle := newSettler(defaultSettle)
	defer settle.stop()
	settled, judge := false, false
	redraw := redrawLines
	if w.tty {
		redraw = redrawTTY
	}
	tick := time.NewTicker(min(redraw, redrawTTY))
	defer tick.Stop()
	lastDraw := time.Now()
	var dedup fleet.Dedup
	// ended is how the watch ends when ctx does, or a watch's channel
	// closes, which it does when ctx ends: select picks either first, and
	// a timeout must not read as success.
	ended := func() error {
		w.drawProgress(true)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return timeoutError{w.timeoutReason(*device, ff.broker, *timeout)}
		}
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return ended()
		case e, ok := <-events:
			if !ok {
				return ended()
			}
			if dedup.Fresh(e) {
				w.event(e)
			}
		case s, ok := <-states:
			if !ok {
				return ended()
			}
			w.state(s)
			settle.saw()
		case p, ok := <-online:
			if !ok {
				return ended()
			}
			w.online(p)
			settle.saw()
		case <-settle.C():
			settle.fired()
			settled = true
			judge = true
		case now := <-tick.C:
			if now.Sub(lastDraw) >= redraw-redraw/10 {
				w.drawProgress(false)
				lastDraw = now
			}
			judge = true
		case r := <-fetched:
			fetching = false
			if r.err != nil && fetchCtx.Err() == nil {
				fmt.Fprintf(stderr, "tern: cannot read the retained targets of %d sources yet (%v); trying again\n", len(r.scopes), r.err)
				retryAt = time.Now().Add(time.Second)
			}
			w.sourcesRead(r)
			w.counting = true
		}
		if settled && !fetching && time.Now().After(retryAt) {
			if scopes := w.toRead(); len(scopes) > 0 {
				fetching = true
				fetches.Go(func() {
					got, err := op.RetainedTargets(fetchCtx, scopes, retainedTargetsQuiet)
					fetched <- fetchResult{scopes, got, err}
				})
			}
		}
		if settled && !fetching {
			w.counting = true // nothing (more) to read
		}
		// Judge "all converged" only once the retained reports are in
		// (before that, the first device to report would be "all"), and
		// only on a tick: counting walks every device.
		if judge && settled && *until && w.progress().done() {
			w.changed = true // the last line shows it
			w.drawProgress(true)
			return nil
		}
		judge = false
	}
}

// retainedTargetsQuiet is how long tern watch --pushed waits, after the
// broker acknowledged its subscriptions and after each retained target,
// before it takes a source without one for having none. A target it missed
// would make a device's combined version look reached too early, so it
// waits longer than settleQuiet.
const retainedTargetsQuiet = time.Second

// maxGroups is the most groups tern watch --pushed adds up the versions of
// for one device: the most whose versions fleet.CombinedVersion always
// sums. A device reporting more stays pending, and causes no reads.
const maxGroups = 2047

// pushedFlag checks --pushed and returns the scope it names: the group or
// the device watched.
func pushedFlag(pushed uint64, device, group string, version, minVersion uint64) (string, error) {
	switch {
	case pushed == 0:
		return "", nil
	case pushed > fleet.MaxVersion:
		return "", usageError{fmt.Errorf("--pushed %d is above the largest version, %d: no push has it", pushed, uint64(fleet.MaxVersion))}
	case version > 0 || minVersion > 0:
		return "", usageError{errors.New("give --pushed (the version pushed to the group or device) or --version (the combined version devices report), not both")}
	case group != "":
		return fleet.GroupScope(group), nil
	case device != "":
		return fleet.DeviceScope(device), nil
	}
	return "", usageError{errors.New("--pushed needs --group or --device: the group or device the version was pushed to")}
}

// fetchResult is one batch of retained targets read for tern watch
// --pushed.
type fetchResult struct {
	scopes []string
	got    map[string]fleet.TargetEnvelope
	err    error
}

// watcher prints what tern watch sees and keeps the rollout's count.
type watcher struct {
	roster  *roster
	version uint64 // the target version that counts as converged (0: any)
	// pushed is the version pushed to pushedScope (--pushed; 0: none).
	// Each device must then reach the combined version of pushed and the
	// versions retained for its other sources, read into sources.
	pushed      uint64
	pushedScope string
	sources     map[string]uint64 // retained version by scope (0: none), once read
	asked       map[string]bool   // scopes being read, or read
	unread      map[string]bool   // devices whose report may name sources not asked for yet
	expect      int
	out         io.Writer
	json        bool
	rollout     bool // show the progress line
	tty         bool // redraw it in place
	// counting is false until the rollout can be counted: with --pushed,
	// not before the retained reports are in and the first batch of
	// sources was read (before that, every device would be pending).
	counting bool

	changed bool     // reports came since the last progress line
	last    progress // the last progress line drawn
	drawn   bool     // a progress line is on screen (tty) or was printed
}

// want is the combined version m must report to count as converged; ok is
// false while it is not known.
func (w *watcher) want(m *member) (v uint64, ok bool) {
	if w.pushed == 0 {
		return w.version, true
	}
	if m.state == nil || len(m.state.Groups) > maxGroups {
		return 0, false
	}
	scopes := fleet.Scopes(m.id, m.state.Groups)
	versions := make([]uint64, len(scopes))
	for i, sc := range scopes {
		if sc == w.pushedScope {
			versions[i] = w.pushed
			continue
		}
		if versions[i], ok = w.sources[sc]; !ok {
			return 0, false
		}
	}
	v, err := fleet.CombinedVersion(versions...)
	return v, err == nil
}

// mustReach says which combined version m must reach, for a --pushed
// rollout.
func (w *watcher) mustReach(m *member) string {
	if n := len(m.state.Groups); n > maxGroups {
		return fmt.Sprintf("it reports %d groups, and tern adds up the versions of at most %d", n, maxGroups)
	}
	v, ok := w.want(m)
	if !ok {
		return "its other targets were not read yet"
	}
	return fmt.Sprintf("it must reach combined version %d: %d pushed to %s plus the versions of its other targets", v, w.pushed, w.pushedScope)
}

// toRead returns the scopes whose retained targets the devices in scope
// that reported since the last call need and nobody asked for yet, and
// marks them asked.
func (w *watcher) toRead() []string {
	var scopes []string
	for id := range w.unread {
		delete(w.unread, id)
		m := w.roster.members[id]
		if m == nil || m.state == nil || !w.roster.inScope(m) || len(m.state.Groups) > maxGroups {
			continue
		}
		for _, sc := range fleet.Scopes(m.id, m.state.Groups) {
			if sc != w.pushedScope && !w.asked[sc] {
				w.asked[sc] = true
				scopes = append(scopes, sc)
			}
		}
	}
	sort.Strings(scopes)
	return scopes
}

// sourcesRead records a batch of retained targets: each scope read has
// the version retained for it, or 0 when none is; a batch that failed is
// asked for again.
func (w *watcher) sourcesRead(r fetchResult) {
	for _, sc := range r.scopes {
		if r.err != nil {
			delete(w.asked, sc)
			continue
		}
		w.sources[sc] = r.got[sc].Version
	}
	w.changed = true
}

// progress counts the rollout watched.
func (w *watcher) progress() progress {
	p := w.roster.progress(w.want, w.expect)
	p.Version, p.Scope = w.version, ""
	if w.pushed > 0 {
		p.Version, p.Scope = w.pushed, w.pushedScope
	}
	return p
}

// refusedRollout reports whether a target.refused event refuses the
// rollout watched: the pushed version of its scope, or a combined version
// at or above the one the device must reach.
func (w *watcher) refusedRollout(e fleet.EventReport) bool {
	if e.Kind != runtime.EventTargetRefused {
		return false
	}
	if w.pushed > 0 && e.TargetVersion >= w.pushed && strings.HasPrefix(e.Message, w.pushedScope+" ") {
		return true
	}
	m := w.roster.members[e.Device]
	if m == nil {
		return false
	}
	v, ok := w.want(m)
	return ok && v > 0 && e.TargetVersion >= v
}

func (w *watcher) inScope(device string) bool {
	if w.roster.everyDevice() {
		return true
	}
	m := w.roster.members[device]
	return m != nil && w.roster.inScope(m)
}

func (w *watcher) state(s fleet.StateReport) {
	w.roster.addState(s)
	w.changed = true
	if w.pushed > 0 {
		w.unread[s.Device] = true
	}
	if !w.inScope(s.Device) {
		return
	}
	switch {
	case w.json:
		w.line(string(mustJSON(struct {
			Type string `json:"type"`
			fleet.StateReport
		}{"state", s})))
	case !w.rollout || (!s.Converged && (s.Phase == runtime.PhaseFailed || s.Error != "")):
		conv := "not converged"
		if s.Converged {
			conv = "converged"
		}
		line := fmt.Sprintf("%s  %-8s state  v%d %s, %s: %s", s.Time.Local().Format("15:04:05.000"), s.Device, s.TargetVersion, s.Phase, conv, s.State)
		if s.Error != "" {
			line += "  error: " + s.Error
		}
		w.line(line)
	}
}

func (w *watcher) online(p fleet.Presence) {
	w.roster.addOnline(p)
	w.changed = true
	if !w.inScope(p.Device) {
		return
	}
	switch {
	case w.json:
		w.line(string(mustJSON(struct {
			Type string `json:"type"`
			fleet.Presence
		}{"online", p})))
	case !w.rollout:
		word := "offline"
		if p.Online {
			word = "online"
		}
		w.line(fmt.Sprintf("%s  %-8s %s", time.Now().Format("15:04:05.000"), p.Device, word))
	}
}

func (w *watcher) event(e fleet.EventReport) {
	if !w.inScope(e.Device) {
		return
	}
	if w.refusedRollout(e) {
		w.roster.get(e.Device).refused = e.Message
		w.changed = true
	}
	switch {
	case w.json:
		w.line(string(mustJSON(struct {
			Type string `json:"type"`
			fleet.EventReport
		}{"event", e})))
	case !w.rollout || failure(e.Kind):
		w.line(fmt.Sprintf("%s  %-8s event  %-15s %s", e.Time.Local().Format("15:04:05.000"), e.Device, e.Kind, describeEvent(e)))
	}
}

// failure reports whether an event kind is worth a line during a rollout,
// where the progress line says the rest.
func failure(k runtime.EventKind) bool {
	switch k {
	case runtime.EventTargetRefused, runtime.EventPlanFailed, runtime.EventPlanPartial, runtime.EventTaskFailed, runtime.EventModuleError, runtime.EventModuleRolledBack:
		return true
	}
	return false
}

// line prints one line, keeping the progress line (on a terminal) below
// it.
func (w *watcher) line(s string) {
	if w.tty && w.drawn {
		fmt.Fprint(w.out, "\r\033[K")
	}
	fmt.Fprintln(w.out, s)
	if w.tty && w.drawn {
		fmt.Fprint(w.out, w.last.String())
	}
}

// drawProgress shows the rollout line if it changed; final ends it with a
// newline on a terminal.
func (w *watcher) drawProgress(final bool) {
	if !w.rollout || !w.counting {
		return
	}
	if w.changed || !w.drawn {
		p := w.progress()
		w.changed = false
		if p != w.last || !w.drawn {
			w.last = p
			switch {
			case w.json:
				fmt.Fprintln(w.out, string(mustJSON(p)))
			case w.tty:
				fmt.Fprint(w.out, "\r\033[K"+p.String())
			default:
				fmt.Fprintln(w.out, p.String())
			}
			w.drawn = true
		}
	}
	if final && w.tty && w.drawn {
		fmt.Fprintln(w.out)
	}
}

// timeoutReason says what was still missing when --timeout struck.
func (w *watcher) timeoutReason(device, broker string, timeout time.Duration) error {
	if device != "" {
		msg := fmt.Sprintf("device %s did not report its target reached within %v", device, timeout)
		m := w.roster.members[device]
		if m != nil && m.state != nil {
			s := m.state
			msg += fmt.Sprintf(" (last report: phase %s, target version %d, error %q", s.Phase, s.TargetVersion, s.Error)
			if w.pushed > 0 {
				msg += "; " + w.mustReach(m)
			}
			msg += ")"
		} else {
			msg += " (no report at all: is ternd running and connected to " + broker + "?)"
		}
		return errors.New(msg)
	}
	p := w.progress()
	if p.Total == 0 {
		return fmt.Errorf("no device reported within %v: check --fleet, --group and --broker (%s), and that ternd runs", timeout, broker)
	}
	var failed, pending []string
	for _, m := range w.roster.list() {
		reached, failure := m.verdict(w.want(m))
		switch {
		case reached:
		case failure != "":
			failed = append(failed, m.id+": "+failure)
		default:
			pending = append(pending, m.id)
		}
	}
	msg := fmt.Sprintf("not every device converged within %v: %s", timeout, p)
	if len(failed) > 0 {
		msg += "; failed: " + firstFew(failed, 5)
	}
	if len(pending) > 0 {
		msg += "; pending: " + firstFew(pending, 10)
	}
	return errors.New(msg)
}

func firstFew(s []string, n int) string {
	if len(s) <= n {
		return strings.Join(s, ", ")
	}
	return strings.Join(s[:n], ", ") + fmt.Sprintf(" and %d more", len(s)-n)
}

// isTerminal reports whether w is a terminal, where the progress line is
// redrawn in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
