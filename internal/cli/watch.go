package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
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
	version := fs.Uint64("version", 0, "show the rollout of this target version as one progress line; with --until-converged, only this version or a later one counts")
	minVersion := fs.Uint64("min-version", 0, "the same as --version, without the progress line")
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

	w := &watcher{
		roster:  newRoster(*group),
		version: max(*version, *minVersion),
		expect:  *expect,
		out:     stdout,
		json:    *asJSON,
		rollout: *version > 0,
		tty:     !*asJSON && isTerminal(stdout),
	}
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
	for {
		select {
		case <-ctx.Done():
			w.drawProgress(true)
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return timeoutError{w.timeoutReason(*device, ff.broker, *timeout)}
			}
			return nil
		case e, ok := <-events:
			if !ok {
				return nil
			}
			if dedup.Fresh(e) {
				w.event(e)
			}
		case s, ok := <-states:
			if !ok {
				return nil
			}
			w.state(s)
			settle.saw()
		case p, ok := <-online:
			if !ok {
				return nil
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
		}
		// Judge "all converged" only once the retained reports are in
		// (before that, the first device to report would be "all"), and
		// only on a tick: counting walks every device.
		if judge && settled && *until && w.roster.progress(w.version, w.expect).done() {
			w.changed = true // the last line shows it
			w.drawProgress(true)
			return nil
		}
		judge = false
	}
}

// watcher prints what tern watch sees and keeps the rollout's count.
type watcher struct {
	roster  *roster
	version uint64 // the target version that counts as converged (0: any)
	expect  int
	out     io.Writer
	json    bool
	rollout bool // show the progress line
	tty     bool // redraw it in place

	changed bool     // reports came since the last progress line
	last    progress // the last progress line drawn
	drawn   bool     // a progress line is on screen (tty) or was printed
}

func (w *watcher) inScope(device string) bool {
	if w.roster.group == "" {
		return true
	}
	m := w.roster.members[device]
	return m != nil && w.roster.inScope(m)
}

func (w *watcher) state(s fleet.StateReport) {
	w.roster.addState(s)
	w.changed = true
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
	if e.Kind == runtime.EventTargetRefused && w.version > 0 && e.TargetVersion >= w.version {
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
	case runtime.EventTargetRefused, runtime.EventPlanFailed, runtime.EventTaskFailed, runtime.EventModuleError, runtime.EventModuleRolledBack:
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
	if !w.rollout {
		return
	}
	if w.changed || !w.drawn {
		p := w.roster.progress(w.version, w.expect)
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
			msg += fmt.Sprintf(" (last report: phase %s, target version %d, error %q)", s.Phase, s.TargetVersion, s.Error)
		} else {
			msg += " (no report at all: is ternd running and connected to " + broker + "?)"
		}
		return errors.New(msg)
	}
	p := w.roster.progress(w.version, w.expect)
	if p.Total == 0 {
		return fmt.Errorf("no device reported within %v: check --fleet, --group and --broker (%s), and that ternd runs", timeout, broker)
	}
	var failed, pending []string
	for _, m := range w.roster.list() {
		switch {
		case m.reached(w.version):
		case m.failed(w.version) != "":
			failed = append(failed, m.id+": "+m.failed(w.version))
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
