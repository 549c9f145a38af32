package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/tern-iot/tern/runtime/api"
)

// inventoryRow is one device in tern inventory --json.
type inventoryRow struct {
	Device string `json:"device"`
	// Online is null when the device never published its online flag.
	Online *bool    `json:"online"`
	Groups []string `json:"groups,omitempty"`
	// Agent is the state report's agent block; null when the device's
	// ternd does not report one (older than the inventory).
	Agent *api.AgentInfo    `json:"agent"`
	Facts map[string]string `json:"facts,omitempty"`
	// UptimeSeconds is how long its ternd has run, by this machine's
	// clock; null when unknown.
	UptimeSeconds *float64   `json:"uptime_seconds"`
	Reported      *time.Time `json:"reported"` // when the device made its last report; null: never
}

func inventoryCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("inventory", stderr)
	f := newFleetRead(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("inventory takes no arguments, got %q; select devices with --where KEY=VALUE", fs.Arg(0))}
	}
	r, err := f.read(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	var rows []inventoryRow
	for _, m := range r.list() {
		rows = append(rows, inventoryRowOf(m, now))
	}
	if *f.asJSON {
		if rows == nil {
			rows = []inventoryRow{}
		}
		fmt.Fprintln(stdout, string(mustJSON(rows)))
	} else {
		printInventory(stdout, rows)
	}
	if len(rows) == 0 {
		return f.nobody()
	}
	return nil
}

func inventoryRowOf(m *member, now time.Time) inventoryRow {
	row := inventoryRow{Device: m.id, Online: m.online}
	if s := m.state; s != nil {
		row.Groups, row.Agent, row.Facts = s.Groups, s.Agent, s.Facts
		if !s.Time.IsZero() {
			t := s.Time
			row.Reported = &t
		}
		if s.Agent != nil && !s.Agent.Started.IsZero() {
			up := now.Sub(s.Agent.Started).Seconds()
			row.UptimeSeconds = &up
		}
	}
	return row
}

func printInventory(w io.Writer, rows []inventoryRow) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tVERSION\tARCH\tBOARD\tKERNEL\tUPTIME\tSTORE\tDISK FREE\tOUTBOX\tRSS\tONLINE\tFACTS")
	for _, r := range rows {
		online := onlineWord(r.Online)
		version, arch, board, kernel, store, disk, outbox, rss := "-", "-", "-", "-", "-", "-", "-", "-"
		if a := r.Agent; a != nil {
			version, arch, board, kernel, store = cell(a.Version), cell(a.Arch), cell(a.Board), cell(a.Kernel), cell(a.Store)
			disk, outbox, rss = bytesText(a.DiskFree), fmt.Sprint(a.OutboxDepth), bytesText(a.RSS)
		}
		uptime := "-"
		if r.UptimeSeconds != nil {
			uptime = durationText(time.Duration(*r.UptimeSeconds * float64(time.Second)))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Device, version, arch, board, kernel, uptime, store, disk, outbox, rss, online, dash(factsText(r.Facts)))
	}
	_ = tw.Flush()
}

// cell is a report's text for a table cell: no tabs, line breaks or
// other control characters (a report is outside input), spaces kept, at
// most 40 characters.
func cell(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.TrimSpace(s))
	if r := []rune(s); len(r) > 40 {
		s = string(r[:39]) + "…"
	}
	return dash(s)
}

// factsText is the FACTS column: key=value, sorted, comma-separated,
// without spaces or control characters.
func factsText(f map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(f)) {
		parts = append(parts, k+"="+f[k])
	}
	return layersText(parts)
}

// bytesText is n bytes as a person reads it: 512B, 3.4K, 27M, 1.2G.
func bytesText(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	if v < 10 {
		return fmt.Sprintf("%.1f%c", v, "KMGTP"[i])
	}
	return fmt.Sprintf("%.0f%c", v, "KMGTP"[i])
}

// durationText is an uptime: 45s, 12m, 3h20m, 5d3h.
func durationText(d time.Duration) string {
	switch {
	case d < 0:
		return "-"
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return fmt.Sprintf("%dd%dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
}
