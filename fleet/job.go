package fleet

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/runtime/jobs"
	"github.com/tern-iot/tern/runtime/state"
)

// JobEnvelope carries a job to a device or a group: one-shot or scheduled
// work, one module job with arguments (issue 17). It is published
// retained, QoS 1, on its own topic ([Topics.DeviceJob], [Topics.GroupJob]),
// signed like a target; a new version of the same id edits the job (a
// device that has not started it takes the new one), and one with
// Canceled set cancels it.
//
//	{"format":2,"prefix":"tern","fleet":"demo","version":1,"id":"20261206-030000-k3v9qa",
//	 "module":"updater","job":"upgrade","args":{"packages":"all"},
//	 "not_before":"2026-12-06T04:00:00+01:00","deadline":"2026-12-06T08:00:00+01:00","attempts":3}
type JobEnvelope struct {
	// Format is always Format (2).
	Format int `json:"format"`
	// Prefix and Fleet name the fleet the job is for (see TargetEnvelope).
	Prefix string `json:"prefix"`
	Fleet  string `json:"fleet"`
	// Version orders the versions of one job: 1 when submitted, one more
	// at each edit or the cancel.
	Version uint64 `json:"version"`
	// ID names the job: unique, sortable by the time it was made
	// ([NewJobID]); it is the last level of its topic.
	ID string `json:"id"`
	// Module and Job name the module job to run, with Args, a JSON object
	// (at most MaxJobArgs bytes), as the job's arguments.
	Module string          `json:"module"`
	Job    string          `json:"job"`
	Args   json.RawMessage `json:"args,omitempty"`
	// NotBefore, Cron, TZ, Deadline, Window, After, Attempts and Backoff
	// say when it runs (see jobs.Spec). None: now.
	NotBefore time.Time `json:"not_before,omitzero"`
	Cron      string    `json:"cron,omitempty"`
	TZ        string    `json:"tz,omitempty"`
	Deadline  time.Time `json:"deadline,omitzero"`
	Window    Duration  `json:"window,omitempty"`
	After     []JobDep  `json:"after,omitempty"`
	Attempts  int       `json:"attempts,omitempty"`
	Backoff   Duration  `json:"backoff,omitempty"`
	// RetryInterrupted lets a device run the job again when it was
	// running when the device stopped (a power cut); otherwise such a
	// job is reported interrupted and not run again.
	RetryInterrupted bool `json:"retry_interrupted,omitempty"`
	// Canceled cancels the job on every device that has not ended it.
	Canceled bool `json:"canceled,omitempty"`
	// SignedScope, Issued, Key and Sig are as in TargetEnvelope.
	SignedScope string    `json:"scope,omitempty"`
	Issued      time.Time `json:"issued,omitzero"`
	Key         string    `json:"key,omitempty"`
	Sig         []byte    `json:"sig,omitempty"`
}

// JobDep is a dependency of a job on another job of the same device:
// "when": "succeeded" (the default) or "ended".
type JobDep struct {
	Job  string `json:"job"`
	When string `json:"when,omitempty"`
}

// MaxJobArgs bounds a job's arguments, in bytes of JSON.
const MaxJobArgs = 64 << 10

// Duration is a time.Duration written as Go writes one ("90s", "2h").
type Duration time.Duration

// MarshalJSON writes d as a string such as "1h30m0s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a string such as "90s" or "2h".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"90s\" or \"2h\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// NewJobID makes a job id for a job made at t: the time in UTC to the
// second and six random characters, e.g. "20261206-030000-k3v9qa", so ids
// sort by the time they were made and two operators do not collide.
func NewJobID(t time.Time) string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b [6]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return t.UTC().Format("20060102-150405") + "-" + string(b[:])
}

// JobScope is the scope of a job: the scope of the device or group it is
// for, and its id, "device/pi-001/job/<id>", so a job signed for one
// device, group or id verifies for no other.
func JobScope(target, id string) string { return target + "/job/" + id }

// Spec is the job's schedule for the device's scheduler.
func (env JobEnvelope) Spec() jobs.Spec {
	s := jobs.Spec{
		ID: env.ID, NotBefore: env.NotBefore, Cron: env.Cron, TZ: env.TZ, Deadline: env.Deadline,
		Window: time.Duration(env.Window), Attempts: env.Attempts, Backoff: time.Duration(env.Backoff),
	}
	for _, d := range env.After {
		s.After = append(s.After, jobs.Dep{Job: d.Job, Ended: d.When == "ended"})
	}
	return s
}

// ParseJobEnvelope reads a job envelope received from the broker. It
// refuses what ParseTargetEnvelope refuses, and a job without an id,
// module or job name, with arguments that are not a JSON object or over
// MaxJobArgs, or with a schedule that cannot run (jobs.Spec.Check: a cron
// expression that never fires, an unknown time zone, a dependency on
// itself).
func ParseJobEnvelope(b []byte) (JobEnvelope, error) {
	const what = "job envelope"
	var env JobEnvelope
	if err := decode(envelopeKind(what, "tern job submit", MaxPayload, "keep its arguments under 64 KiB"), b, &env); err != nil {
		return JobEnvelope{}, err
	}
	if err := checkAddress(what, "tern job submit --fleet NAME", env.Prefix, env.Fleet); err != nil {
		return JobEnvelope{}, err
	}
	if err := checkVersion(what, "submit", env.Version); err != nil {
		return JobEnvelope{}, err
	}
	if err := env.check(); err != nil {
		return JobEnvelope{}, newError(ErrMalformed, err, "fleet: %s %.70q version %d: %v", what, env.ID, env.Version, err)
	}
	return env, nil
}

// check checks what a job says, apart from its address and version.
func (env JobEnvelope) check() error {
	var errs []error
	if p := idProblem(env.ID); p != "" {
		errs = append(errs, fmt.Errorf(`bad "id": %s`, p))
	}
	if p := idProblem(env.Module); p != "" {
		errs = append(errs, fmt.Errorf(`bad "module": %s`, p))
	}
	if p := idProblem(env.Job); p != "" {
		errs = append(errs, fmt.Errorf(`bad "job": %s`, p))
	}
	if len(env.Args) > 0 {
		if len(env.Args) > MaxJobArgs {
			errs = append(errs, fmt.Errorf(`"args" is %d bytes, over the limit of %d`, len(env.Args), MaxJobArgs))
		} else if k := jsonKind(env.Args); k != "an object" {
			errs = append(errs, fmt.Errorf(`"args" must be a JSON object, got %s`, k))
		} else if _, err := state.Parse(env.Args); err != nil {
			errs = append(errs, fmt.Errorf(`"args": %v`, err))
		}
	}
	for _, d := range env.After {
		if p := idProblem(d.Job); p != "" {
			errs = append(errs, fmt.Errorf(`"after": bad job id: %s`, p))
		}
		if d.When != "" && d.When != "succeeded" && d.When != "ended" {
			errs = append(errs, fmt.Errorf(`"after": job %s: "when" is %q; write "succeeded" (the default) or "ended"`, d.Job, d.When))
		}
	}
	if s := env.SignedScope; s != "" {
		target, id, ok := strings.Cut(s, "/job/")
		kind, name, _ := strings.Cut(target, "/")
		if !ok || id != env.ID || (kind != "device" && kind != "group") || idProblem(name) != "" {
			errs = append(errs, fmt.Errorf(`bad "scope" %.80q: want device/<id>/job/%s or group/<name>/job/%s`, s, env.ID, env.ID))
		}
	}
	if err := env.Spec().Check(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// signedBytes is what a job's signature covers: the common lines (see the
// function signedBytes) for scope (JobScope), then the job's body (every
// field but the address, version, scope, issue time and signature) in
// canonical JSON.
func (env JobEnvelope) signedBytes(scope string) ([]byte, error) {
	body := env
	body.Format, body.Prefix, body.Fleet, body.Version = 0, "", "", 0
	body.SignedScope, body.Issued, body.Key, body.Sig = "", time.Time{}, "", nil
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	v, err := state.Parse(b)
	if err != nil {
		return nil, err
	}
	return signedBytes("tern job", env.Prefix, env.Fleet, scope, env.Version, string(state.Canonical(v))), nil
}

// SetTopics makes the envelope for the fleet and topic prefix of t.
func (env *JobEnvelope) SetTopics(t Topics) { env.Prefix, env.Fleet = t.prefix(), t.Fleet }

// CheckTopics reports whether the envelope is for the fleet and topic
// prefix of t ([ErrWrongFleet]).
func (env JobEnvelope) CheckTopics(t Topics) error {
	return checkTopics(fmt.Sprintf("job %s version %d", env.ID, env.Version), env.Prefix, env.Fleet, t, "tern job submit")
}

// Sign signs the job for scope (JobScope) with the operator's key. Set
// the fleet first (SetTopics).
func (env *JobEnvelope) Sign(scope string, priv ed25519.PrivateKey) error {
	if env.Fleet == "" || env.Prefix == "" {
		return errors.New("fleet: signing a job: it names no fleet or topic prefix, which the signature must cover; call SetTopics first")
	}
	msg, err := env.signedBytes(scope)
	if err != nil {
		return fmt.Errorf("fleet: signing a job: %w", err)
	}
	env.SignedScope = scope
	env.Key, env.Sig = sign(priv, msg)
	return nil
}

// Verify checks the job's signature for scope against the device's trust
// store, as TargetEnvelope.Verify does.
func (env JobEnvelope) Verify(scope string, trust signing.Trust) error {
	if env.SignedScope != "" && env.SignedScope != scope {
		return newError(ErrWrongScope, nil,
			"job %s version %d was signed for %s but arrived on the topic of %s: a signed job is valid only for the device or group, and the id, it was signed for; submit it again with tern job submit",
			env.ID, env.Version, env.SignedScope, scope)
	}
	msg, err := env.signedBytes(scope)
	if err != nil {
		return err
	}
	return verify(trust, env.Key, env.Sig, msg, "jobs", "submit with tern job submit --key", fmt.Sprintf("job %s for %s, version %d", env.ID, scope, env.Version))
}

// SubmitJob publishes env, retained, QoS 1, on the job topic of scope
// (DeviceScope or GroupScope): the device, or every device in the group
// now or later, receives it, including devices that are off now, when
// they come back. Submitting a higher version of the same id edits or
// cancels the job. It refuses what a device would refuse.
func (o *Operator) SubmitJob(ctx context.Context, scope string, env JobEnvelope) error {
	kind, name, _ := strings.Cut(scope, "/")
	var topic string
	switch {
	case idProblem(name) != "":
		return fmt.Errorf("fleet: submit job: %s", idProblem(name))
	case kind == "device":
		topic = o.opts.Topics.DeviceJob(name, env.ID)
	case kind == "group":
		topic = o.opts.Topics.GroupJob(name, env.ID)
	default:
		return fmt.Errorf("fleet: submit job: scope %q: want device/<id> or group/<name>", scope)
	}
	if env.Format == 0 {
		env.Format = Format
	}
	what := fmt.Sprintf("job %s for %s", env.ID, scope)
	if err := o.address(what, env.Key != "", &env.Prefix, &env.Fleet, func(t Topics) error { return env.CheckTopics(t) }); err != nil {
		return err
	}
	b, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("fleet: submit %s: encode: %w", what, err)
	}
	if _, err := ParseJobEnvelope(b); err != nil {
		return fmt.Errorf("fleet: not submitting a job devices would refuse: %w", err)
	}
	return o.publishRetained(ctx, "submit "+what, topic, b, o.opts.ConnectTimeout)
}

// RetainedJobs reads the jobs retained on the broker: every job of the
// fleet when id is empty, else the job id, for devices and groups alike.
// It collects until none arrived for wait (counted from the broker's
// acknowledgement of the subscriptions and from each job). Jobs that do
// not parse are logged and left out. Signatures are not checked (devices
// do). Each comes with the scope its signature covers.
func (o *Operator) RetainedJobs(ctx context.Context, id string, wait time.Duration) ([]ScopedJob, error) {
	leaf := "+"
	if id != "" {
		if p := idProblem(id); p != "" {
			return nil, fmt.Errorf("fleet: read jobs: job id: %s", p)
		}
		leaf = id
	}
	t := o.opts.Topics
	devPrefix, groupPrefix := t.devices(), t.base()+"/groups/"
	var got []ScopedJob
	err := o.readRetained(ctx, []string{t.DeviceJob("+", leaf), t.GroupJob("+", leaf)}, wait, func(topic string, payload []byte) {
		env, err := ParseJobEnvelope(payload)
		if err == nil {
			err = env.CheckTopics(t)
		}
		if err != nil {
			o.log.Warn("fleet: a retained job devices refuse; left out", "topic", topic, "err", err)
			return
		}
		var scope string
		if rest, ok := strings.CutPrefix(topic, devPrefix); ok {
			scope = DeviceScope(strings.SplitN(rest, "/", 2)[0])
		} else if rest, ok := strings.CutPrefix(topic, groupPrefix); ok {
			scope = GroupScope(strings.SplitN(rest, "/", 2)[0])
		}
		if scope == "" || !strings.HasSuffix(topic, "/"+env.ID) {
			o.log.Warn("fleet: a retained job on the topic of another id; left out", "topic", topic, "id", env.ID)
			return
		}
		got = append(got, ScopedJob{Scope: JobScope(scope, env.ID), JobEnvelope: env})
	})
	slices.SortFunc(got, func(a, b ScopedJob) int { return strings.Compare(a.ID+" "+a.Scope, b.ID+" "+b.Scope) })
	return got, err
}

// JobStatuses reads the statuses devices retained for job id, collecting
// as RetainedJobs does. Reports that do not parse, or name another device
// or job than their topic, are logged and left out.
func (o *Operator) JobStatuses(ctx context.Context, id string, wait time.Duration) ([]JobStatusReport, error) {
	if p := idProblem(id); p != "" {
		return nil, fmt.Errorf("fleet: read job statuses: job id: %s", p)
	}
	t := o.opts.Topics
	by := map[string]JobStatusReport{}
	err := o.readRetained(ctx, []string{t.JobStatus("+", id)}, wait, func(topic string, payload []byte) {
		r, err := ParseJobStatusReport(payload)
		if err == nil && (r.Device != t.deviceOf(topic) || r.ID != id) {
			err = fmt.Errorf("report of device %q, job %q, on the topic of device %q, job %q", r.Device, r.ID, t.deviceOf(topic), id)
		}
		if err != nil {
			o.log.Warn("fleet: ignoring a job status", "topic", topic, "err", err)
			return
		}
		by[r.Device] = r
	})
	out := make([]JobStatusReport, 0, len(by))
	for _, r := range by {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b JobStatusReport) int { return strings.Compare(a.Device, b.Device) })
	return out, err
}
