package fleet

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/runtime/state"
)

// A fleet dry-run asks every device in a scope what it would do with a
// candidate target, without doing it (docs/mqtt.md, "Dry-run"): the
// operator publishes a signed [DryRunRequest], QoS 1, not retained, on
// the scope's dry-run topic; each device that is connected builds the
// target it would pursue were the candidate pushed, plans it on its live
// state, and answers with a [DryRunAnswer], QoS 1, not retained, on its
// own answer topic for the request. Nothing is stored or run.

// DeviceDryRun is where a dry-run request for one device is published,
// not retained: <prefix>/<fleet>/devices/<id>/dryrun.
func (t Topics) DeviceDryRun(id string) string { return t.device(id, "dryrun") }

// GroupDryRun is where a dry-run request for a group is published, not
// retained: <prefix>/<fleet>/groups/<group>/dryrun.
func (t Topics) GroupDryRun(group string) string {
	return t.base() + "/groups/" + group + "/dryrun"
}

// DryRunAnswer is where a device answers dry-run request req, not
// retained: <prefix>/<fleet>/devices/<id>/dryrun/<req>. AnyDevice ("+")
// as id makes the filter an operator reads every answer with.
func (t Topics) DryRunAnswer(id, req string) string { return t.device(id, "dryrun/"+req) }

// Bounds of a dry-run answer: it must fit a report whatever the plan, so
// the plan's tasks, the unreached paths and the texts are cut, and say so.
const (
	// MaxDryRunTasks is the most tasks an answer lists; MoreTasks counts
	// the rest.
	MaxDryRunTasks = 256
	// maxDryRunUnreached bounds DryRunAnswer.Unreached.
	maxDryRunUnreached = 64
	// maxDryRunReason and maxDryRunWhy bound the reason and the
	// explanation, in bytes.
	maxDryRunReason = 1 << 10
	maxDryRunWhy    = 8 << 10
	// maxDryRunTaskText bounds each field of a task (a path may be long).
	maxDryRunTaskText = 512
)

// DryRunRequest asks the devices of a scope to plan a candidate target
// without acting (tern push --dry-run). It is signed like a target
// envelope, for the same scope, and carries the same fields, plus ID.
//
//	{"format":2,"prefix":"tern","fleet":"demo","id":"dr-1765000000000-3f2a",
//	 "version":1765000000000,"target":{"relays":{"fan":true}},"scope":"group/heaters","key":"…","sig":"…"}
type DryRunRequest struct {
	// Format is always Format (2).
	Format int    `json:"format"`
	Prefix string `json:"prefix"`
	Fleet  string `json:"fleet"`
	// ID names the request, as ValidID names a device: the devices answer
	// on their DryRunAnswer topic for it.
	ID string `json:"id"`
	// Version and Target are the candidate's, as a push would carry them:
	// the device checks the version as it would a pushed one.
	Version uint64          `json:"version"`
	Target  json.RawMessage `json:"target"`
	// SignedScope, Issued, Key and Sig are as in TargetEnvelope.
	SignedScope string    `json:"scope,omitempty"`
	Issued      time.Time `json:"issued,omitzero"`
	Key         string    `json:"key,omitempty"`
	Sig         []byte    `json:"sig,omitempty"`
}

// ParseDryRunRequest reads a dry-run request received from the fleet. It
// refuses what ParseTargetEnvelope refuses, and a missing or bad "id".
func ParseDryRunRequest(b []byte) (DryRunRequest, error) {
	const what = "dry-run request"
	var r DryRunRequest
	if err := decode(envelopeKind(what, "tern push --dry-run", MaxPayload, "keep the candidate target smaller"), b, &r); err != nil {
		return DryRunRequest{}, err
	}
	if err := checkAddress(what, "tern push --dry-run --fleet NAME", r.Prefix, r.Fleet); err != nil {
		return DryRunRequest{}, err
	}
	if p := idProblem(r.ID); p != "" {
		return DryRunRequest{}, newError(ErrMalformed, nil, `fleet: %s: bad "id": %s`, what, p)
	}
	if err := checkVersion(what, "push", r.Version); err != nil {
		return DryRunRequest{}, err
	}
	if s := r.SignedScope; s != "" {
		kind, name, _ := strings.Cut(s, "/")
		if p := idProblem(name); (kind != "device" && kind != "group") || p != "" {
			return DryRunRequest{}, newError(ErrMalformed, nil, `fleet: %s %s: bad "scope" %.80q: want device/<id> or group/<name>`, what, r.ID, s)
		}
	}
	if k := jsonKind(r.Target); k != "an object" {
		return DryRunRequest{}, newError(ErrMalformed, nil, `fleet: %s %s: "target" must be a JSON object (the candidate desired state), got %s`, what, r.ID, k)
	}
	if _, err := state.Parse(r.Target); err != nil {
		return DryRunRequest{}, newError(ErrMalformed, err, `fleet: %s %s: "target": %v`, what, r.ID, err)
	}
	return r, nil
}

// signedBytes is what a dry-run request's signature covers: the common
// lines (see the function signedBytes) under its own kind, so that no
// request passes for a target and no target for a request, then the id and
// the canonical target.
func (r DryRunRequest) signedBytes(scope string) ([]byte, error) {
	v, err := state.Parse(r.Target)
	if err != nil {
		return nil, err
	}
	return signedBytes("tern dryrun", r.Prefix, r.Fleet, scope, r.Version, "id "+r.ID, string(state.Canonical(v))), nil
}

// SetTopics makes the request for the fleet and topic prefix of t; call
// it before Sign.
func (r *DryRunRequest) SetTopics(t Topics) { r.Prefix, r.Fleet = t.prefix(), t.Fleet }

// CheckTopics reports whether the request is for the fleet and prefix of t.
func (r DryRunRequest) CheckTopics(t Topics) error {
	return checkTopics("dry-run request "+r.ID, r.Prefix, r.Fleet, t, "tern push --dry-run")
}

// Sign signs the request for scope with the operator's key.
func (r *DryRunRequest) Sign(scope string, priv ed25519.PrivateKey) error {
	if r.Fleet == "" || r.Prefix == "" {
		return errors.New("fleet: signing a dry-run request: it names no fleet or topic prefix, which the signature must cover; call SetTopics first")
	}
	msg, err := r.signedBytes(scope)
	if err != nil {
		return fmt.Errorf("fleet: signing a dry-run request: %w", err)
	}
	r.SignedScope = scope
	r.Key, r.Sig = sign(priv, msg)
	return nil
}

// Verify checks the request's signature for scope against trust, as
// TargetEnvelope.Verify does.
func (r DryRunRequest) Verify(scope string, trust signing.Trust) error {
	if r.SignedScope != "" && r.SignedScope != scope {
		kind, name, _ := strings.Cut(scope, "/")
		return newError(ErrWrongScope, nil,
			"dry-run request %s was signed for %s but arrived on the topic of %s: sign it for the device or group it is for, with tern push --dry-run --%s %s",
			r.ID, r.SignedScope, scope, kind, name)
	}
	msg, err := r.signedBytes(scope)
	if err != nil {
		return err
	}
	return verify(trust, r.Key, r.Sig, msg, "dry-run requests", "ask with tern push --dry-run --key", fmt.Sprintf("dry-run %s for %s", r.ID, scope))
}

// ScopedDryRun is a dry-run request and the scope it arrived on.
type ScopedDryRun struct {
	Scope string
	DryRunRequest
}

// Outcomes of a dry-run, DryRunAnswer.Outcome.
const (
	// DryRunChange: the device has a plan that reaches the candidate.
	DryRunChange = "change"
	// DryRunConverged: its live state meets the candidate already.
	DryRunConverged = "converged"
	// DryRunCannot: no plan reaches the candidate; Reason says why.
	DryRunCannot = "cannot"
	// DryRunRefused: the device refused the request or the candidate as
	// a push (signature, version); Reason says why.
	DryRunRefused = "refused"
	// DryRunBusy: the agent stayed busy (a long plan, a module install)
	// past the device's wait; ask again.
	DryRunBusy = "busy"
)

// DryRunTask is one task of a dry-run plan.
type DryRunTask struct {
	Job  string `json:"job"` // module.job
	Op   string `json:"op"`  // create, update, delete
	Path string `json:"path"`
}

// String is the task as tern prints it: "relay.switch update /relays/fan".
func (t DryRunTask) String() string { return t.Job + " " + t.Op + " " + t.Path }

// DryRunAnswer is a device's answer to a dry-run request, published QoS
// 1, not retained, on [Topics.DryRunAnswer].
//
//	{"format":1,"device":"pi-001","id":"dr-1765000000000-3f2a","scope":"group/heaters",
//	 "version":1765000000000,"target_version":7,"outcome":"change",
//	 "tasks":[{"job":"relay.switch","op":"update","path":"/relays/fan"}],"time":"…"}
type DryRunAnswer struct {
	// Format is always ReportFormat (1).
	Format int    `json:"format"`
	Device string `json:"device"`
	// ID, Scope and Version are the request's.
	ID      string `json:"id"`
	Scope   string `json:"scope,omitempty"`
	Version uint64 `json:"version,omitempty"`
	// TargetVersion is the combined version the device holds, which the
	// dry-run did not change.
	TargetVersion uint64 `json:"target_version"`
	// Outcome is one of DryRunChange, DryRunConverged, DryRunCannot,
	// DryRunRefused, DryRunBusy.
	Outcome string `json:"outcome"`
	// Tasks is the plan, in order, at most MaxDryRunTasks; MoreTasks
	// counts those left out.
	Tasks     []DryRunTask `json:"tasks,omitempty"`
	MoreTasks int          `json:"more_tasks,omitempty"`
	// Reason says, for cannot, refused and busy, why, in words that are
	// the same on every device with the same problem (no current values),
	// so that tern groups devices by it. Why is the whole explanation
	// (the planner's "why no plan", with this device's values), cut to
	// 8 KiB.
	Reason string `json:"reason,omitempty"`
	Why    string `json:"why,omitempty"`
	// Unreached lists the parts of the candidate a plan would leave
	// unreached (a partial plan), at most 64; empty when the plan, if
	// any, reaches all of it.
	Unreached []string  `json:"unreached,omitempty"`
	Time      time.Time `json:"time,omitzero"`
	// Truncated: something above was cut to fit the bounds.
	Truncated bool `json:"truncated,omitempty"`
}

// Bound cuts a to the answer's bounds, and says so in Truncated.
func (a DryRunAnswer) Bound() DryRunAnswer {
	if len(a.Tasks) > MaxDryRunTasks {
		a.MoreTasks += len(a.Tasks) - MaxDryRunTasks
		a.Tasks = a.Tasks[:MaxDryRunTasks:MaxDryRunTasks]
		a.Truncated = true
	}
	copied := false // the caller's slice is never written to
	for i, t := range a.Tasks {
		if len(t.Job) > maxDryRunTaskText || len(t.Op) > maxDryRunTaskText || len(t.Path) > maxDryRunTaskText {
			if !copied {
				a.Tasks, copied = append([]DryRunTask(nil), a.Tasks...), true
			}
			a.Tasks[i] = DryRunTask{Job: cut(t.Job, maxDryRunTaskText), Op: cut(t.Op, maxDryRunTaskText), Path: cut(t.Path, maxDryRunTaskText)}
			a.Truncated = true
		}
	}
	if len(a.Unreached) > maxDryRunUnreached {
		a.Unreached = a.Unreached[:maxDryRunUnreached:maxDryRunUnreached]
		a.Truncated = true
	}
	copied = false
	for i, p := range a.Unreached {
		if len(p) > maxDryRunTaskText {
			if !copied {
				a.Unreached, copied = append([]string(nil), a.Unreached...), true
			}
			a.Unreached[i] = cut(p, maxDryRunTaskText)
			a.Truncated = true
		}
	}
	if len(a.Reason) > maxDryRunReason || len(a.Why) > maxDryRunWhy {
		a.Reason, a.Why = cut(a.Reason, maxDryRunReason), cut(a.Why, maxDryRunWhy)
		a.Truncated = true
	}
	return a
}

// ParseDryRunAnswer reads a device's answer to a dry-run request. It
// refuses payloads over MaxPayload, other formats, answers without a valid
// device or request id, unknown outcomes, and answers over the bounds a
// device keeps to (Bound).
func ParseDryRunAnswer(b []byte) (DryRunAnswer, error) {
	const what = "dry-run answer"
	var a DryRunAnswer
	if err := decode(reportKind(what), b, &a); err != nil {
		return DryRunAnswer{}, err
	}
	if p := idProblem(a.Device); p != "" {
		return DryRunAnswer{}, newError(ErrMalformed, nil, `fleet: %s: bad "device": %s`, what, p)
	}
	if p := idProblem(a.ID); p != "" {
		return DryRunAnswer{}, newError(ErrMalformed, nil, `fleet: %s of %s: bad "id": %s`, what, a.Device, p)
	}
	switch a.Outcome {
	case DryRunChange, DryRunConverged, DryRunCannot, DryRunRefused, DryRunBusy:
	default:
		return DryRunAnswer{}, newError(ErrMalformed, nil, `fleet: %s of %s: "outcome" %.40q is none of change, converged, cannot, refused, busy`, what, a.Device, a.Outcome)
	}
	if a.MoreTasks < 0 {
		return DryRunAnswer{}, newError(ErrMalformed, nil, `fleet: %s of %s: "more_tasks" is negative`, what, a.Device)
	}
	if bounded := a.Bound(); bounded.Truncated && !a.Truncated {
		return DryRunAnswer{}, newError(ErrTooLarge, nil, "fleet: %s of %s: over the bounds of an answer (%d tasks, %d unreached paths, %d-byte reason and %d-byte explanation at most)",
			what, a.Device, MaxDryRunTasks, maxDryRunUnreached, maxDryRunReason, maxDryRunWhy)
	} else if bounded.Truncated {
		a = bounded
	}
	return a, nil
}

// maxPendingDryRuns bounds the dry-run requests received and not yet
// taken (TakeDryRuns); beyond it they are dropped before parsing, so that
// a flood of requests costs the device little. A dry-run request is not
// retained: a dropped one is not seen again, and the operator's tern
// counts the device as not answering.
const maxPendingDryRuns = 4

// dryRunRoutes are the dry-run topics the device subscribes to, each with
// the scope of what arrives on it.
func (d *Device) dryRunRoutes() map[string]string {
	t := d.opts.Topics
	routes := map[string]string{t.DeviceDryRun(d.opts.Device): DeviceScope(d.opts.Device)}
	for _, g := range d.opts.Groups {
		routes[t.GroupDryRun(g)] = GroupScope(g)
	}
	return routes
}

// dryRunInbox holds the requests received and not yet taken.
type dryRunInbox struct {
	wake    chan struct{}
	pending []ScopedDryRun
	dropped int // since the inbox was last empty
}

// DryRunsWaiting is signalled when dry-run requests arrive; TakeDryRuns
// takes them.
func (d *Device) DryRunsWaiting() <-chan struct{} { return d.dry.wake }

// TakeDryRuns returns the dry-run requests received since the last call,
// each parsed and made for this device's fleet and topic prefix; their
// signature is for the consumer to check.
func (d *Device) TakeDryRuns() []ScopedDryRun {
	d.jobMu.Lock()
	defer d.jobMu.Unlock()
	out := d.dry.pending
	d.dry.pending, d.dry.dropped = nil, 0
	return out
}

// subscribeDryRuns subscribes to the dry-run topics without holding the
// connection on the acknowledgement, at QoS 0: a request is worth
// answering only while the operator waits, so one that arrives while the
// device is away must not be queued for it (docs/mqtt.md, Dry-run). A
// broker whose ACL predates dry-runs refuses the subscription: said at
// Warn, the device stays connected.
func (d *Device) subscribeDryRuns(c paho.Client) {
	d.subscribeUnheld(c, d.dryRunRoutes(), "dry-run", "no dry-run reaches this device")
}

// onDryRun runs on paho's delivery goroutine: it must not block.
func (d *Device) onDryRun(scope string) paho.MessageHandler {
	return func(_ paho.Client, m paho.Message) {
		if len(m.Payload()) == 0 {
			return
		}
		d.jobMu.Lock()
		if len(d.dry.pending) >= maxPendingDryRuns {
			d.dry.dropped++
			first := d.dry.dropped == 1
			d.jobMu.Unlock()
			if first {
				d.log.Warn("fleet: dry-run requests dropped: the agent has not taken the ones before; they are not answered", "topic", m.Topic(), "waiting", maxPendingDryRuns)
			}
			return
		}
		d.jobMu.Unlock()
		r, err := ParseDryRunRequest(m.Payload())
		if err == nil {
			err = r.CheckTopics(d.opts.Topics)
		}
		if err != nil {
			// Not answered: whoever sent it may not be an operator, and
			// a malformed request names no id to answer on for sure.
			d.log.Warn("fleet: refusing dry-run request", "topic", m.Topic(), "err", err)
			return
		}
		d.jobMu.Lock()
		if len(d.dry.pending) >= maxPendingDryRuns {
			d.jobMu.Unlock()
			return
		}
		d.dry.pending = append(d.dry.pending, ScopedDryRun{Scope: scope, DryRunRequest: r})
		d.jobMu.Unlock()
		signal(d.dry.wake)
	}
}

// AnswerDryRun publishes a, cut to its bounds, on the device's answer
// topic for its request, QoS 1, not retained, and waits for the broker's
// acknowledgement (at most ConnectTimeout). It does not go through the
// outbox: an answer is worth something only while the operator waits, so
// one that cannot go out now is dropped, with an error that matches
// ErrOffline.
func (d *Device) AnswerDryRun(ctx context.Context, a DryRunAnswer) error {
	if p := idProblem(a.ID); p != "" {
		return fmt.Errorf("fleet: dry-run answer: bad request id: %s", p)
	}
	a.Format, a.Device = ReportFormat, d.opts.Device
	b, err := encode("dry-run answer", a.Bound())
	if err != nil {
		return err
	}
	c := d.client.Load()
	if c == nil || !(*c).IsConnectionOpen() {
		return newError(ErrOffline, nil, "fleet: dry-run answer %s not sent: not connected to the broker", a.ID)
	}
	ctx, cancel := context.WithTimeout(ctx, d.opts.ConnectTimeout)
	defer cancel()
	return d.waitAck(ctx, *c, (*c).Publish(d.opts.Topics.DryRunAnswer(d.opts.Device, a.ID), qos, false, b))
}

// DryRun publishes req, signed for scope (see DryRunRequest.Sign), on the
// scope's dry-run topic, QoS 1, not retained, after subscribing to its
// answers, which it delivers, parsed, until ctx is done. Cancel ctx to
// stop. The channel holds up to 65536 answers for a slow reader.
func (o *Operator) DryRun(ctx context.Context, scope string, req DryRunRequest) (<-chan DryRunAnswer, error) {
	kind, name, _ := strings.Cut(scope, "/")
	var topic string
	switch kind {
	case "device":
		topic = o.opts.Topics.DeviceDryRun(name)
	case "group":
		topic = o.opts.Topics.GroupDryRun(name)
	}
	if p := idProblem(name); p != "" || topic == "" {
		return nil, fmt.Errorf("fleet: dry-run: scope %.80q: want device/<id> or group/<name>", scope)
	}
	if err := o.address("dry-run request", req.Key != "", &req.Prefix, &req.Fleet, func(t Topics) error { return req.CheckTopics(t) }); err != nil {
		return nil, err
	}
	b, err := encode("dry-run request", req)
	if err != nil {
		return nil, err
	}
	if _, err := ParseDryRunRequest(b); err != nil {
		return nil, err
	}
	answers, err := watch(ctx, o, "dry-run answer", AnyDevice, false, func(id string) string { return o.opts.Topics.DryRunAnswer(id, req.ID) },
		ParseDryRunAnswer, func(a *DryRunAnswer) *string { return &a.Device })
	if err != nil {
		return nil, err
	}
	if err := o.waitUp(ctx); err != nil {
		return nil, err
	}
	if err := waitToken(ctx, o.client, o.client.Publish(topic, qos, false, b)); err != nil {
		return nil, fmt.Errorf("fleet: publish dry-run request %s on %s: %w", req.ID, topic, err)
	}
	return answers, nil
}

// NewDryRunID makes a request id: dr-<milliseconds>-<random>, which sorts
// by time and does not collide between operators.
func NewDryRunID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return "dr-" + strconv.FormatInt(now.UnixMilli(), 10) + "-" + hex.EncodeToString(b[:])
}
