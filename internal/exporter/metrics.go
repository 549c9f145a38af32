package exporter

import (
	"maps"
	"slices"
	"strings"

	"github.com/tern-iot/tern/internal/promtext"
)

// Bounds on the series of the fleet-wide families: the newest rollouts and
// jobs count, the others are left out; labels from devices are cut.
const (
	maxRolloutSeries = 100 // rollouts in tern_rollout_devices
	maxJobSeries     = 100 // jobs in tern_job_devices
	maxLabel         = 128 // bytes of a label value taken from a report
)

// MetricNames lists every family the exporter serves (a test holds the
// Grafana dashboard to it).
var MetricNames = []string{
	"tern_devices",
	"tern_device_info",
	"tern_device_online",
	"tern_device_converged",
	"tern_device_target_version",
	"tern_device_last_seen_timestamp_seconds",
	"tern_device_outbox_depth",
	"tern_rollout_devices",
	"tern_job_devices",
	"tern_events_total",
	"tern_exporter_events_stored",
	"tern_exporter_duplicates_dropped_total",
}

func cut(s string) string {
	if len(s) <= maxLabel {
		return s
	}
	s = s[:maxLabel]
	for len(s) > 0 && !validUTF8End(s) {
		s = s[:len(s)-1]
	}
	return s
}

func validUTF8End(s string) bool { return strings.ToValidUTF8(s, "") == s }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// metrics writes the fleet's metrics, computed now from what the exporter
// keeps.
func (e *Exporter) metrics() ([]byte, error) {
	devices := e.Devices()
	var w promtext.Writer

	w.Family("tern_devices", "Devices the exporter knows (from their state reports, presence, job statuses or events).", promtext.Gauge)
	w.Sample(nil, float64(len(devices)))

	w.Family("tern_device_info", "A device's agent: ternd version, architecture and board, from its state report; always 1.", promtext.Gauge)
	for _, d := range devices {
		var version, arch, board string
		if d.State != nil && d.State.Agent != nil {
			version, arch, board = d.State.Agent.Version, d.State.Agent.Arch, d.State.Agent.Board
		}
		w.Sample(promtext.L("device", d.ID, "version", cut(version), "arch", cut(arch), "board", cut(board)), 1)
	}
	w.Family("tern_device_online", "1 while the device's retained online flag is true.", promtext.Gauge)
	for _, d := range devices {
		w.Sample(promtext.L("device", d.ID), b2f(d.Online))
	}
	w.Family("tern_device_converged", "1 when the device's last state report says it reached its target.", promtext.Gauge)
	for _, d := range devices {
		if d.State != nil {
			w.Sample(promtext.L("device", d.ID), b2f(d.State.Converged))
		}
	}
	w.Family("tern_device_target_version", "The (combined) target version the device last reported.", promtext.Gauge)
	for _, d := range devices {
		if d.State != nil {
			w.Sample(promtext.L("device", d.ID), float64(d.State.TargetVersion))
		}
	}
	w.Family("tern_device_last_seen_timestamp_seconds", "When the device's last state report or event happened (its clock, never later than the exporter's), Unix seconds.", promtext.Gauge)
	for _, d := range devices {
		if !d.Seen.IsZero() {
			w.Sample(promtext.L("device", d.ID), float64(d.Seen.UnixNano())/1e9)
		}
	}
	w.Family("tern_device_outbox_depth", "Event reports waiting on the device to be sent, from its state report.", promtext.Gauge)
	for _, d := range devices {
		if d.State != nil && d.State.Agent != nil {
			w.Sample(promtext.L("device", d.ID), float64(d.State.Agent.OutboxDepth))
		}
	}

	// Rollouts: devices by rollout and phase, the newest rollouts.
	type counts struct {
		newest string // the latest time heard of, for ranking (RFC 3339 sorts)
		phases map[string]int
	}
	rollouts := map[string]*counts{}
	jobs := map[string]*counts{}
	add := func(m map[string]*counts, id, phase, when string) {
		c := m[id]
		if c == nil {
			c = &counts{phases: map[string]int{}}
			m[id] = c
		}
		c.phases[phase]++
		c.newest = max(c.newest, when)
	}
	for _, d := range devices {
		if d.State != nil {
			for id, r := range d.State.Rollouts {
				add(rollouts, cut(id), cut(string(r.Phase)), r.Since.UTC().Format("2006-01-02T15:04:05.000000000Z"))
			}
		}
		for id, j := range d.Jobs {
			add(jobs, cut(id), cut(j.Phase), j.Time.UTC().Format("2006-01-02T15:04:05.000000000Z"))
		}
	}
	newest := func(m map[string]*counts, n int) []string {
		ids := slices.Collect(maps.Keys(m))
		slices.SortFunc(ids, func(a, b string) int {
			if c := strings.Compare(m[b].newest, m[a].newest); c != 0 {
				return c
			}
			return strings.Compare(a, b)
		})
		ids = ids[:min(len(ids), n)]
		slices.Sort(ids)
		return ids
	}
	w.Family("tern_rollout_devices", "Devices by rollout and by their phase in it (waiting, halted, deferred, applying, succeeded, failed, aborted, replaced), from their state reports; the 100 rollouts heard of last.", promtext.Gauge)
	for _, id := range newest(rollouts, maxRolloutSeries) {
		for _, p := range slices.Sorted(maps.Keys(rollouts[id].phases)) {
			w.Sample(promtext.L("rollout", id, "phase", p), float64(rollouts[id].phases[p]))
		}
	}
	w.Family("tern_job_devices", "Devices by job and by the job's phase on them (queued, waiting, running, succeeded, failed, ...), from their retained job statuses; the 100 jobs heard of last.", promtext.Gauge)
	for _, id := range newest(jobs, maxJobSeries) {
		for _, p := range slices.Sorted(maps.Keys(jobs[id].phases)) {
			w.Sample(promtext.L("job", id, "phase", p), float64(jobs[id].phases[p]))
		}
	}

	stored, kinds, err := e.stats()
	if err != nil {
		return nil, err
	}
	w.Family("tern_events_total", "Events stored in the history, by kind, ever (copies dropped are not counted); at most 64 kinds, the rest as \"other\".", promtext.Counter)
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		w.Sample(promtext.L("kind", k), float64(kinds[k]))
	}
	w.Family("tern_exporter_events_stored", "Events in the history now (retention and --max-events remove the oldest).", promtext.Gauge)
	w.Sample(nil, float64(stored))
	w.Family("tern_exporter_duplicates_dropped_total", "Event reports dropped as copies of one already stored, since the exporter started.", promtext.Counter)
	w.Sample(nil, float64(e.dups.Load()))
	w.Family("tern_exporter_devices_refused_total", "Reports of devices beyond --max-devices, not kept, since the exporter started.", promtext.Counter)
	w.Sample(nil, float64(e.refused.Load()))
	return w.Bytes()
}

func (e *Exporter) stats() (uint64, map[string]uint64, error) {
	e.storeMu.RLock()
	defer e.storeMu.RUnlock()
	if e.closed {
		return 0, nil, errClosed
	}
	return e.hist.stats()
}
