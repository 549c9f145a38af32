package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tern-iot/tern/fleet"
)

// statusRow is one device in tern status --json.
type statusRow struct {
	Device string `json:"device"`
	// Online is null when the device never published its online flag.
	Online        *bool             `json:"online"`
	TargetVersion uint64            `json:"target_version"`
	Converged     bool              `json:"converged"`
	Phase         string            `json:"phase"`
	Error         string            `json:"error,omitempty"`
	Reported      *time.Time        `json:"reported"`    // when the device made its last report; null: never
	AgeSeconds    *float64          `json:"age_seconds"` // how long ago, by this machine's clock
	Modules       map[string]string `json:"modules,omitempty"`
	Groups        []string          `json:"groups,omitempty"`
	// Layers are the conditional target layers active on the device.
	Layers []string `json:"layers,omitempty"`
}

// fleetRead is what the commands that list devices from their retained
// state reports share (tern status, tern inventory): the flags that
// select them, reading them, and the error when none reported.
type fleetRead struct {
	ff            fleetFlags
	device, group *string
	sel           *selection
	asJSON        *bool
	wait          *time.Duration
}

func newFleetRead(fs *flag.FlagSet) *fleetRead {
	f := &fleetRead{}
	f.ff.register(fs)
	f.device = fs.String("device", "", "show only this device")
	f.group = fs.String("group", "", "show only the devices of this group (as their state reports list it)")
	f.sel = whereFlag(fs)
	f.asJSON = fs.Bool("json", false, "print one JSON array of devices instead of a table")
	f.wait = fs.Duration("wait", defaultSettle, "collect retained reports for at most this long (less when they stop coming for 300ms)")
	return f
}

// read collects the selected devices' reports (after the flags parsed).
func (f *fleetRead) read(ctx context.Context) (*roster, error) {
	scope, err := scopeFlags(*f.device, *f.group)
	if err != nil {
		return nil, err
	}
	if *f.wait <= 0 {
		return nil, usageError{fmt.Errorf("--wait %v: must be positive, e.g. --wait 5s", *f.wait)}
	}
	op, err := f.ff.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer op.Close()
	r := newRoster(*f.group)
	r.where = *f.sel
	if err := collect(ctx, op, scope, *f.wait, r); err != nil {
		return nil, fmt.Errorf("reading device reports: %w", err)
	}
	return r, nil
}

// nobody is the error when no selected device reported.
func (f *fleetRead) nobody() error {
	where := "fleet " + f.ff.fleet
	switch {
	case *f.device != "":
		where = "device " + *f.device + " in " + where
	case *f.group != "":
		where = "group " + *f.group + " in " + where
	}
	check := "--fleet and --broker"
	if len(*f.sel) > 0 {
		where = "devices with " + f.sel.String() + " in " + where
		check = "--fleet, --broker and --where"
	}
	return fmt.Errorf("no device reported in %s on %s within %v; check %s, and that ternd runs", where, f.ff.broker, *f.wait, check)
}

func status(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", stderr)
	f := newFleetRead(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("status takes no arguments, got %q; name a device with --device ID", fs.Arg(0))}
	}
	r, err := f.read(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	members := r.list()
	rows := make([]statusRow, 0, len(members))
	for _, m := range members {
		rows = append(rows, rowOf(m, now))
	}
	if *f.asJSON {
		fmt.Fprintln(stdout, string(mustJSON(rows)))
	} else if cut := printStatusTable(stdout, rows); cut {
		fmt.Fprintln(stderr, "(ERROR shows the first line of each error; tern status --json shows them whole)")
	}

	if len(rows) == 0 {
		return f.nobody()
	}
	var bad []string
	for _, row := range rows {
		var why []string
		if !row.Converged {
			why = append(why, "not converged")
		}
		if row.Online == nil || !*row.Online {
			why = append(why, "offline")
		}
		if len(why) > 0 {
			bad = append(bad, row.Device+" ("+strings.Join(why, ", ")+")")
		}
	}
	if len(bad) > 0 {
		shown := bad
		if len(shown) > 10 {
			shown = append(shown[:10:10], fmt.Sprintf("and %d more", len(bad)-10))
		}
		return notConvergedError{fmt.Errorf("%d of %d devices are not converged and online: %s", len(bad), len(rows), strings.Join(shown, ", "))}
	}
	return nil
}

// scopeFlags checks --device and --group and returns the device to
// subscribe to: the one named, or every device.
func scopeFlags(device, group string) (string, error) {
	switch {
	case device != "" && group != "":
		return "", usageError{errors.New("give --device or --group, not both")}
	case device != "":
		if err := fleet.ValidID(device); err != nil {
			return "", usageError{fmt.Errorf("--device: %w", err)}
		}
		return device, nil
	case group != "":
		if err := fleet.ValidID(group); err != nil {
			return "", usageError{fmt.Errorf("--group: %w", err)}
		}
	}
	return fleet.AnyDevice, nil
}

func rowOf(m *member, now time.Time) statusRow {
	row := statusRow{Device: m.id, Online: m.online}
	if s := m.state; s != nil {
		row.TargetVersion, row.Converged, row.Phase, row.Error = s.TargetVersion, s.Converged, string(s.Phase), s.Error
		row.Modules, row.Groups, row.Layers = s.Modules, s.Groups, s.Layers
		if !s.Time.IsZero() {
			t := s.Time
			age := now.Sub(t).Seconds()
			row.Reported, row.AgeSeconds = &t, &age
		}
	}
	return row
}

// maxErrorColumn is how many characters of an error the table shows.
const maxErrorColumn = 60

// printStatusTable prints rows as a table, one line per device; cut
// reports whether an error was shortened to fit its column (errors such
// as a plan.failed explanation span several lines).
func printStatusTable(w io.Writer, rows []statusRow) (cut bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tONLINE\tVERSION\tCONVERGED\tPHASE\tAGE\tERROR\tLAYERS\tMODULES")
	for _, r := range rows {
		online := onlineWord(r.Online)
		conv := map[bool]string{true: "yes", false: "no"}[r.Converged]
		age := "-"
		if r.AgeSeconds != nil {
			age = (time.Duration(*r.AgeSeconds * float64(time.Second))).Round(time.Second).String()
		}
		errText, shortened := oneLine(r.Error, maxErrorColumn)
		cut = cut || shortened
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Device, online, r.TargetVersion, conv, dash(r.Phase), age, dash(errText), dash(layersText(r.Layers)), dash(modulesText(r.Modules)))
	}
	_ = tw.Flush()
	return cut
}

// oneLine is the first line of s, without tabs or control characters,
// cut to at most width characters (with "..." at the end when cut); cut
// reports whether anything of s was left out.
func oneLine(s string, width int) (line string, cut bool) {
	first, rest, multi := strings.Cut(strings.TrimSpace(s), "\n")
	first = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.TrimSpace(first))
	cut = multi && strings.TrimSpace(rest) != ""
	if utf8.RuneCountInString(first) > width {
		first = string([]rune(first)[:width-3]) + "..."
		cut = true
	} else if cut {
		first += " ..."
	}
	return first, cut
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// layersText is the LAYERS column: the active layers, comma-separated,
// with control characters and spaces (which would shift the columns)
// taken out; a report is outside input.
func layersText(ls []string) string {
	clean := make([]string, len(ls))
	for i, l := range ls {
		clean[i] = strings.Map(func(r rune) rune {
			if unicode.IsControl(r) || unicode.IsSpace(r) {
				return '_'
			}
			return r
		}, l)
	}
	return strings.Join(clean, ",")
}

// onlineWord is a device's presence in a table: yes, no, or ? when it
// has not said (no retained online message).
func onlineWord(online *bool) string {
	if online == nil {
		return "?"
	}
	if *online {
		return "yes"
	}
	return "no"
}
