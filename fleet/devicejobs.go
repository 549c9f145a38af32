package fleet

import (
	"strings"

	paho "github.com/eclipse/paho.mqtt.golang"
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
		env, err := ParseJobEnvelope(m.Payload())
		if err == nil {
			err = env.CheckTopics(d.opts.Topics)
		}
		if err == nil && !strings.HasSuffix(m.Topic(), "/"+env.ID) {
			err = newError(ErrMalformed, nil, "fleet: job %s arrived on %s, the topic of another job id; submit it with tern job submit", env.ID, m.Topic())
		}
		if err != nil {
			d.log.Warn("fleet: refusing job", "topic", m.Topic(), "err", err)
			d.refuse(Refusal{Topic: m.Topic(), Err: err})
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
			d.jobMu.Unlock()
			err := newError(ErrTooLarge, nil, "fleet: job %s refused: %d jobs wait to be taken; it comes again with the next connection", env.ID, maxPendingJobs)
			d.log.Warn("fleet: refusing job", "topic", m.Topic(), "err", err)
			d.refuse(Refusal{Topic: m.Topic(), Err: err})
			return
		default:
			d.jobPending[k] = ScopedJob{k, env}
			d.jobOrder = append(d.jobOrder, k)
		}
		d.jobMu.Unlock()
		signal(d.jobWake)
	}
}
