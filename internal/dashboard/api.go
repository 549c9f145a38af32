package dashboard

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/runtime/api"
)

// The JSON API the page reads (relative to where the handler is mounted):
//
//	GET api/devices       DeviceList: the fleet table
//	GET api/devices/{id}  DevicePage: one device, its plan, jobs and events
//	                      (?events=N, 1 to MaxEvents; ?kind=a,b; ?since=24h)
//	GET api/rollouts      RolloutList: devices by rollout, wave and phase
//	GET api/jobs          JobList: devices by fleet job and phase
//	GET api/stream        Server-Sent Events (stream.go)
//
// Everything in them that a device sent is data for textContent, never
// markup: the page never parses it as HTML.

// Device statuses, the one word the fleet table shows for a device.
const (
	StatusConverged  = "converged"  // it reached its target
	StatusPending    = "pending"    // planning or running toward it
	StatusFailed     = "failed"     // its last attempt failed; it retries with backoff
	StatusUnreported = "unreported" // no state report has arrived
	StatusNoTarget   = "no-target"  // it holds no target yet: nothing to reach
)

// StatusOf is the one word the fleet table shows for d.
func StatusOf(d Device) string {
	switch {
	case d.State == nil:
		return StatusUnreported
	case d.State.Phase == api.PhaseFailed:
		return StatusFailed
	case d.State.Converged:
		return StatusConverged
	case d.State.TargetVersion == 0 && d.State.Phase == api.PhaseIdle:
		return StatusNoTarget
	}
	return StatusPending
}

// Row is one device in the fleet table.
type Row struct {
	ID            string            `json:"id"`
	Online        bool              `json:"online"`
	Status        string            `json:"status"`
	Converged     bool              `json:"converged"`
	Phase         api.Phase         `json:"phase,omitempty"`
	TargetVersion uint64            `json:"target_version"`
	Modules       map[string]string `json:"modules,omitempty"`
	Error         string            `json:"error,omitempty"`
	// Seen is when the exporter last heard from the device; Age the
	// seconds since, by the exporter's clock (-1: never).
	Seen time.Time `json:"seen,omitzero"`
	Age  float64   `json:"age_s"`
	// Reported is the state report's own time (the device's clock).
	Reported  time.Time                    `json:"reported,omitzero"`
	Groups    []string                     `json:"groups,omitempty"`
	Facts     map[string]string            `json:"facts,omitempty"`
	Agent     *api.AgentInfo               `json:"agent,omitempty"`
	Rollouts  map[string]api.RolloutStatus `json:"rollouts,omitempty"`
	Jobs      int                          `json:"jobs,omitempty"`
	Truncated bool                         `json:"truncated,omitempty"`
}

// RowOf is d's row in the fleet table, its age measured at now.
func RowOf(d Device, now time.Time) Row {
	r := Row{ID: d.ID, Online: d.Online, Status: StatusOf(d), Seen: d.Seen, Age: -1, Jobs: len(d.Jobs)}
	if !d.Seen.IsZero() {
		r.Age = max(now.Sub(d.Seen), 0).Round(time.Millisecond).Seconds()
	}
	if s := d.State; s != nil {
		r.Converged, r.Phase, r.TargetVersion = s.Converged, s.Phase, s.TargetVersion
		r.Modules, r.Error, r.Reported = s.Modules, s.Error, s.Time
		r.Groups, r.Facts, r.Agent, r.Rollouts = s.Groups, s.Facts, s.Agent, s.Rollouts
		r.Truncated = s.Truncated
	}
	return r
}

// Counts are the numbers above the fleet table.
type Counts struct {
	Devices    int `json:"devices"`
	Online     int `json:"online"`
	Converged  int `json:"converged"`
	Pending    int `json:"pending"`
	Failed     int `json:"failed"`
	Unreported int `json:"unreported"`
	NoTarget   int `json:"no_target"`
}

// DeviceList is api/devices.
type DeviceList struct {
	Now     time.Time `json:"now"`
	Title   string    `json:"title"`
	Fleet   string    `json:"fleet,omitempty"`
	Counts  Counts    `json:"counts"`
	Devices []Row     `json:"devices"`
	// More counts the devices left out (over Options.MaxDevices); Counts
	// counts them all.
	More int `json:"more,omitempty"`
}

func (h *handler) devices(w http.ResponseWriter, r *http.Request) {
	now := h.opts.Now()
	all := h.src.Devices()
	out := DeviceList{Now: now, Title: h.opts.Title, Fleet: h.opts.Fleet, Devices: []Row{}}
	for i, d := range all {
		out.Counts.Devices++
		if d.Online {
			out.Counts.Online++
		}
		switch StatusOf(d) {
		case StatusConverged:
			out.Counts.Converged++
		case StatusPending:
			out.Counts.Pending++
		case StatusFailed:
			out.Counts.Failed++
		case StatusNoTarget:
			out.Counts.NoTarget++
		default:
			out.Counts.Unreported++
		}
		if i < h.opts.MaxDevices {
			out.Devices = append(out.Devices, RowOf(d, now))
		} else {
			out.More++
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// DevicePage is api/devices/{id}.
type DevicePage struct {
	Now    time.Time `json:"now"`
	Device Row       `json:"device"`
	// Plan is the plan the device runs or last ran; nil when it reported
	// none.
	Plan    *api.PlanGraph      `json:"plan,omitempty"`
	Metrics *api.MetricsSummary `json:"metrics,omitempty"`
	// Jobs are its fleet jobs' statuses, by id.
	Jobs []api.JobStatus `json:"jobs"`
	// Events are its newest stored events, oldest first; EventsError
	// says why there are none when the Source failed.
	Events         []fleet.EventReport `json:"events"`
	EventsError    string              `json:"events_error,omitempty"`
	Unhandled      []string            `json:"unhandled,omitempty"`
	Unreached      []string            `json:"unreached,omitempty"`
	MissingModules map[string]string   `json:"missing_modules,omitempty"`
	Layers         []string            `json:"layers,omitempty"`
	LayerProblems  []string            `json:"layer_problems,omitempty"`
}

func (h *handler) device(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := fleet.ValidID(id); err != nil {
		writeError(w, http.StatusBadRequest, "dashboard: device id: "+err.Error())
		return
	}
	q, err := eventQuery(r, h.opts.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	q.Device = id
	d, ok := h.src.Device(id)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("dashboard: no device %q is known; the fleet table lists those that are", id))
		return
	}
	now := h.opts.Now()
	out := DevicePage{Now: now, Device: RowOf(d, now), Jobs: []api.JobStatus{}, Events: []fleet.EventReport{}}
	if s := d.State; s != nil {
		out.Plan, out.Metrics = s.Plan, s.Metrics
		out.Unhandled, out.Unreached, out.MissingModules = s.Unhandled, s.Unreached, s.MissingModules
		out.Layers, out.LayerProblems = s.Layers, s.LayerProblems
	}
	for _, j := range d.Jobs {
		out.Jobs = append(out.Jobs, j)
	}
	slices.SortFunc(out.Jobs, func(a, b api.JobStatus) int { return strings.Compare(a.ID, b.ID) })
	evs, err := h.src.Events(r.Context(), q)
	if err != nil {
		out.EventsError = "dashboard: reading the device's events: " + err.Error()
	} else if evs != nil {
		if len(evs) > q.Limit { // a Source that ignored the limit: keep the newest
			evs = evs[len(evs)-q.Limit:]
		}
		out.Events = evs
	}
	writeJSON(w, http.StatusOK, out)
}

// eventQuery reads a device page's event parameters, bounded.
func eventQuery(r *http.Request, now time.Time) (EventQuery, error) {
	v := r.URL.Query()
	q := EventQuery{Limit: DefaultEvents}
	if s := v.Get("events"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxEvents {
			return q, fmt.Errorf("dashboard: events=%.20q: give a number of events from 1 to %d", s, MaxEvents)
		}
		q.Limit = n
	}
	if s := v.Get("since"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 || d > maxSince {
			return q, fmt.Errorf("dashboard: since=%.20q: give a duration such as 30m or 24h, at most %v", s, maxSince)
		}
		q.Since = now.Add(-d)
	}
	for _, s := range v["kind"] {
		for k := range strings.SplitSeq(s, ",") {
			if k == "" {
				continue
			}
			if len(q.Kinds) == MaxKinds {
				return q, fmt.Errorf("dashboard: kind: at most %d kinds in one query", MaxKinds)
			}
			if len(k) > maxKindLen || strings.Trim(k, "abcdefghijklmnopqrstuvwxyz._") != "" {
				return q, fmt.Errorf("dashboard: kind=%.20q: an event kind is lower-case letters, dots and underscores (task.failed)", k)
			}
			q.Kinds = append(q.Kinds, k)
		}
	}
	return q, nil
}

// Bounds on the progress views: the newest rollouts and jobs are shown.
const (
	MaxRolloutsShown = 100
	MaxJobsShown     = 200
)

// RolloutProgress is one rollout's devices by wave and phase, as their
// state reports say (fleet.RolloutControl.Count).
type RolloutProgress struct {
	ID string `json:"id"`
	// What names the change, as the devices report it.
	What    string `json:"what,omitempty"`
	Devices int    `json:"devices"`
	// Since is the newest phase change a device reported.
	Since time.Time `json:"since,omitzero"`
	fleet.RolloutCounts
}

// RolloutList is api/rollouts: the newest rollouts first.
type RolloutList struct {
	Now      time.Time         `json:"now"`
	Rollouts []RolloutProgress `json:"rollouts"`
	More     int               `json:"more,omitempty"`
}

// RolloutsOf counts the rollouts the devices report. Only devices that
// report a rollout count: the dashboard does not hold the rollouts'
// controls, so it cannot tell which devices in scope have not heard of
// one yet (tern rollout status can).
func RolloutsOf(ds []Device) []RolloutProgress {
	type acc struct {
		what  string
		since time.Time
		waves int
		devs  []fleet.RolloutDevice
	}
	by := map[string]*acc{}
	for _, d := range ds {
		if d.State == nil {
			continue
		}
		for id, st := range d.State.Rollouts {
			a := by[id]
			if a == nil {
				a = &acc{}
				by[id] = a
			}
			if a.what == "" {
				a.what = st.What
			}
			if st.Since.After(a.since) {
				a.since = st.Since
			}
			a.waves = max(a.waves, min(st.Wave, fleet.MaxWaves))
			a.devs = append(a.devs, fleet.RolloutDevice{Device: d.ID, Wave: st.Wave, Phase: st.Phase, Why: st.Why, Since: st.Since, Applied: st.Applied})
		}
	}
	out := make([]RolloutProgress, 0, len(by))
	for id, a := range by {
		c := fleet.RolloutControl{Rollout: id, Policy: &fleet.Rollout{ID: id, Waves: make([]float64, max(a.waves, 1))}}
		out = append(out, RolloutProgress{ID: id, What: a.what, Devices: len(a.devs), Since: a.since, RolloutCounts: c.Count(a.devs)})
	}
	slices.SortFunc(out, func(a, b RolloutProgress) int {
		return cmp.Or(b.Since.Compare(a.Since), strings.Compare(a.ID, b.ID))
	})
	return out
}

func (h *handler) rollouts(w http.ResponseWriter, r *http.Request) {
	rs := RolloutsOf(h.src.Devices())
	out := RolloutList{Now: h.opts.Now(), Rollouts: rs}
	if len(rs) > MaxRolloutsShown {
		out.Rollouts, out.More = rs[:MaxRolloutsShown], len(rs)-MaxRolloutsShown
	}
	writeJSON(w, http.StatusOK, out)
}

// JobProgress is one fleet job's devices by phase.
type JobProgress struct {
	ID      string         `json:"id"`
	Module  string         `json:"module,omitempty"`
	Command string         `json:"command,omitempty"`
	Devices int            `json:"devices"`
	Phases  map[string]int `json:"phases"`
	// Time is the newest status a device sent.
	Time time.Time `json:"time,omitzero"`
}

// JobList is api/jobs: the most recently reported jobs first.
type JobList struct {
	Now  time.Time     `json:"now"`
	Jobs []JobProgress `json:"jobs"`
	More int           `json:"more,omitempty"`
}

// JobsOf counts the devices' fleet jobs by id and phase.
func JobsOf(ds []Device) []JobProgress {
	by := map[string]*JobProgress{}
	for _, d := range ds {
		for id, j := range d.Jobs {
			p := by[id]
			if p == nil {
				p = &JobProgress{ID: id, Module: j.Module, Command: j.Command, Phases: map[string]int{}}
				by[id] = p
			}
			p.Devices++
			p.Phases[cmp.Or(j.Phase, "unknown")]++
			if j.Time.After(p.Time) {
				p.Time = j.Time
			}
		}
	}
	out := make([]JobProgress, 0, len(by))
	for _, p := range by {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b JobProgress) int {
		return cmp.Or(b.Time.Compare(a.Time), strings.Compare(a.ID, b.ID))
	})
	return out
}

func (h *handler) jobs(w http.ResponseWriter, r *http.Request) {
	js := JobsOf(h.src.Devices())
	out := JobList{Now: h.opts.Now(), Jobs: js}
	if len(js) > MaxJobsShown {
		out.Jobs, out.More = js[:MaxJobsShown], len(js)-MaxJobsShown
	}
	writeJSON(w, http.StatusOK, out)
}
