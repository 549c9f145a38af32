package fleet

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/tern-iot/tern/runtime/api"
)

// ScopedJob is a job envelope and the scope it arrived on (JobScope of
// the device's or a group's scope and the job's id): what its signature
// must verify for.
type ScopedJob struct {
	Scope string
	JobEnvelope
}

// maxPendingJobs bounds the jobs received and not yet taken (TakeJobs):
// a consumer that falls this far behind has more jobs arriving than it
// can store, and a broker holding 10,000 retained jobs for one device
// must not fill its memory. Beyond it, a job is refused, and comes again
// (retained) with the next connection.
const maxPendingJobs = 1024

// jobRoutes are the job topics the device subscribes to, each with the
// scope of what arrives on it: its own, and each of its groups'.
func (d *Device) jobRoutes() map[string]string {
	t := d.opts.Topics
	routes := map[string]string{t.DeviceJob(d.opts.Device, "+"): DeviceScope(d.opts.Device)}
	for _, g := range d.opts.Groups {
		routes[t.GroupJob(g, "+")] = GroupScope(g)
	}
	return routes
}

// JobsWaiting is signalled when jobs arrive; TakeJobs takes them.
func (d *Device) JobsWaiting() <-chan struct{} { return d.jobWake }

// TakeJobs returns the jobs received since the last call, each parsed and
// made for this device's fleet and topic prefix, the highest version of
// each job; their signature, and whether a version is new, are for the
// consumer to check. Expect redelivery: retained jobs come again with
// every connection.
func (d *Device) TakeJobs() []ScopedJob {
	d.jobMu.Lock()
	defer d.jobMu.Unlock()
	out := make([]ScopedJob, 0, len(d.jobOrder))
	for _, k := range d.jobOrder {
		out = append(out, d.jobPending[k])
	}
	clear(d.jobPending)
	d.jobOrder = d.jobOrder[:0]
	return out
}

// onJob runs on paho's delivery goroutine: it must not block.
func (d *Device) onJob(scope string) paho.MessageHandler {
	return func(_ paho.Client, m paho.Message) {
		if len(m.Payload()) == 0 {
			return // a job removed from the broker: the device keeps what it has
		}
		// A full queue drops a new job before parsing it: 10,000 retained
		// jobs, which come with every connection, must cost little.
		id := lastLevel(m.Topic())
		d.jobMu.Lock()
		_, pending := d.jobPending[JobScope(scope, id)]
		if !pending && len(d.jobOrder) >= maxPendingJobs {
			d.dropJob(m.Topic(), id) // unlocks
			return
		}
		d.jobMu.Unlock()
		env, err := ParseJobEnvelope(m.Payload())
		if err == nil {
			err = env.CheckTopics(d.opts.Topics)
		}
		if err == nil && !strings.HasSuffix(m.Topic(), "/"+env.ID) {
			err = newError(ErrMalformed, nil, "fleet: job %s arrived on %s, the topic of another job id; submit it with tern job submit", env.ID, m.Topic())
		}
		if err != nil {
			d.log.Warn("fleet: refusing job", "topic", m.Topic(), "err", err)
			d.refuse(Refusal{Topic: m.Topic(), Job: lastLevel(m.Topic()), Err: err})
			return
		}
		k := JobScope(scope, env.ID)
		d.jobMu.Lock()
		held, ok := d.jobPending[k]
		switch {
		case ok && held.Version >= env.Version:
		case ok:
			d.jobPending[k] = ScopedJob{k, env}
		case len(d.jobOrder) >= maxPendingJobs:
			d.dropJob(m.Topic(), env.ID) // unlocks
			return
		default:
			d.jobPending[k] = ScopedJob{k, env}
			d.jobOrder = append(d.jobOrder, k)
		}
		d.jobMu.Unlock()
		signal(d.jobWake)
	}
}

// JobStatusReport is what a device publishes, retained, QoS 1, on
// [Topics.JobStatus] for each of its jobs (docs/jobs.md): the job's
// status, and the device.
type JobStatusReport struct {
	// Format is always ReportFormat (1).
	Format int    `json:"format"`
	Device string `json:"device"`
	api.JobStatus
	// Truncated: the result and past runs were left out to fit a report;
	// the device's log has them.
	Truncated bool `json:"truncated,omitempty"`
}

// ParseJobStatusReport parses a job status report.
func ParseJobStatusReport(b []byte) (JobStatusReport, error) {
	const what = "job status report"
	var r JobStatusReport
	if err := decode(reportKind(what), b, &r); err != nil {
		return JobStatusReport{}, err
	}
	if p := idProblem(r.Device); p != "" {
		return JobStatusReport{}, newError(ErrMalformed, nil, `fleet: %s: bad "device": %s`, what, p)
	}
	if r.ID == "" || r.Phase == "" {
		return JobStatusReport{}, newError(ErrMalformed, nil, `fleet: %s has no "id" or "phase"`, what)
	}
	return r, nil
}

// PublishJobStatus hands s to the device's reporter, which publishes it
// retained, QoS 1, on the job's status topic once connected and the event
// reports before it have gone out. Only the latest status of each job
// waits. A status over the report limit goes out without its result and
// past runs, "truncated": true. It does not fail.
func (d *Device) PublishJobStatus(_ context.Context, s api.JobStatus) error {
	r := JobStatusReport{Format: ReportFormat, Device: d.opts.Device, JobStatus: s}
	b, err := json.Marshal(r)
	if err != nil || len(b) > d.reportLimit() {
		d.log.Warn("fleet: job status too large for a report, or not encodable; it goes out without its result and runs", "job", s.ID, "size", len(b), "err", err, "result", string(s.Result))
		r.Result, r.Runs, r.Truncated = nil, nil, true
		r.Why, r.Error = cut(r.Why, 1024), cut(r.Error, 1024)
		if !encodable(r.Time) {
			r.Time = time.Now().UTC()
		}
		b, _ = json.Marshal(r) // every field left is bounded and encodable
	}
	d.stateMu.Lock()
	d.jobStats[s.ID] = b
	d.stateMu.Unlock()
	signal(d.stateWake)
	return nil
}

// sendJobStatuses publishes the waiting job statuses, in job id order,
// each once acknowledged dropped unless a newer one replaced it meanwhile.
func (d *Device) sendJobStatuses(ctx context.Context, c paho.Client) error {
	d.stateMu.Lock()
	ids := make([]string, 0, len(d.jobStats))
	for id := range d.jobStats {
		ids = append(ids, id)
	}
	d.stateMu.Unlock()
	slices.Sort(ids)
	for _, id := range ids {
		d.stateMu.Lock()
		b := d.jobStats[id]
		d.stateMu.Unlock()
		if b == nil {
			continue
		}
		if err := d.waitAck(ctx, c, c.Publish(d.opts.Topics.JobStatus(d.opts.Device, id), qos, true, b)); err != nil {
			return err
		}
		d.stateMu.Lock()
		if cur := d.jobStats[id]; len(cur) == len(b) && &cur[0] == &b[0] {
			delete(d.jobStats, id)
		}
		d.stateMu.Unlock()
	}
	return nil
}

// dropJob drops job id, which arrived on topic while maxPendingJobs wait
// to be taken, and unlocks jobMu, which the caller holds. It is said once
// per connection, not once per job: 10,000 retained jobs must not make
// 9,000 refusals.
func (d *Device) dropJob(topic, id string) {
	d.jobDropped++
	first := d.jobDropped == 1
	d.jobMu.Unlock()
	if first {
		err := newError(ErrTooLarge, nil, "fleet: jobs refused from job %s on: %d jobs wait to be taken; they come again with the next connection", id, maxPendingJobs)
		d.log.Warn("fleet: refusing jobs", "topic", topic, "err", err)
		d.refuse(Refusal{Topic: topic, Job: id, Err: err})
	}
}

// lastLevel is the last level of an MQTT topic.
func lastLevel(topic string) string { return topic[strings.LastIndexByte(topic, '/')+1:] }
