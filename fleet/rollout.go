package fleet

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/runtime/window"
)

// Rollout is the policy under which a target, a module release or an agent
// release reaches the devices in its scope (docs/rollouts.md). It travels
// inside the envelope it governs, covered by that envelope's signature, so
// every device evaluates it for itself, offline devices too, and no server
// decides who goes next.
//
// Each device computes its wave from the rollout's id and its own id
// (Wave), and acts when the wave opens (Opens), by its own clock, once it
// has heard the rollout's control message ([RolloutControl]) on its
// current connection and that message does not halt it.
type Rollout struct {
	// ID names the rollout; it is the last level of its control topic
	// ([Topics.Rollout]) and, with the device id, decides each device's
	// wave.
	ID string `json:"id"`
	// Waves are cumulative fractions of the devices in scope, ascending,
	// the last 1: [0.01, 0.1, 0.5, 1] puts about 1% of the devices in the
	// first wave, 9% in the second, 40% in the third and the rest in the
	// fourth. At most MaxWaves.
	Waves []float64 `json:"waves"`
	// Start is when the first wave opens; wave i (from 0) opens at Start
	// + i×Interval, by each device's clock.
	Start    time.Time `json:"start"`
	Interval Duration  `json:"interval,omitempty"`
	// Disruptive makes each device wait, before it applies the change,
	// for one of its maintenance windows and for its modules' busy
	// sensors to clear (up to DeferMax); see docs/rollouts.md.
	Disruptive bool `json:"disruptive,omitempty"`
	// Windows, when set, replace the device's own maintenance windows
	// (ternd.yaml update_policy.windows) for this change.
	Windows []window.Window `json:"windows,omitempty"`
	// DeferMax bounds how long a busy device defers a disruptive change;
	// 0: the device's own bound (update_policy.defer_max).
	DeferMax Duration `json:"defer_max,omitempty"`
	// Abort is the rule a watcher (tern rollout watch --auto-abort)
	// applies; devices do not read it.
	Abort *AbortRule `json:"abort,omitempty"`
}

// AbortRule halts a rollout when, once MinFinished devices have finished
// (succeeded or failed), more than FailedPercent of them failed.
type AbortRule struct {
	FailedPercent float64 `json:"failed_percent"`
	MinFinished   int     `json:"min_finished"`
}

// Trips reports whether the rule halts a rollout with these counts.
func (r AbortRule) Trips(succeeded, failed int) bool {
	finished := succeeded + failed
	return finished > 0 && finished >= r.MinFinished && float64(failed)*100 > r.FailedPercent*float64(finished)
}

func (r AbortRule) String() string {
	return fmt.Sprintf("failed > %g%% once %d have finished", r.FailedPercent, r.MinFinished)
}

// Bounds of a Rollout.
const (
	MaxWaves       = 16
	MaxWindows     = 8
	maxInterval    = 90 * 24 * time.Hour
	maxRolloutJSON = 8 << 10
)

// Wave returns the wave (from 0) device is in: a hash of the rollout's id
// and the device's id, read as a fraction in [0, 1), falls in one wave's
// share. The same device is in the same wave of a rollout wherever the
// question is asked; another rollout id deals the devices again.
func (r Rollout) Wave(device string) int {
	return WaveOf(r.ID, device, r.Waves)
}

// WaveOf is Rollout.Wave for an id and waves.
func WaveOf(id, device string, waves []float64) int {
	sum := sha256.Sum256([]byte("tern rollout\n" + id + "\n" + device))
	u := float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53) // [0, 1)
	for i, w := range waves {
		if u < w {
			return i
		}
	}
	return max(len(waves)-1, 0)
}

// Opens returns when wave (from 0) opens.
func (r Rollout) Opens(wave int) time.Time {
	return r.Start.Add(time.Duration(wave) * time.Duration(r.Interval))
}

// Check reports what is wrong with the rollout, if anything.
func (r Rollout) Check() error {
	var errs []error
	if p := idProblem(r.ID); p != "" {
		errs = append(errs, fmt.Errorf(`bad "id": %s`, p))
	}
	switch n := len(r.Waves); {
	case n == 0:
		errs = append(errs, errors.New(`"waves" is empty; give the cumulative share of each wave, the last 1, e.g. [0.01, 0.1, 0.5, 1]`))
	case n > MaxWaves:
		errs = append(errs, fmt.Errorf(`%d "waves", over the limit of %d`, n, MaxWaves))
	default:
		for i, w := range r.Waves {
			if math.IsNaN(w) || w <= 0 || w > 1 || i > 0 && w <= r.Waves[i-1] {
				errs = append(errs, fmt.Errorf(`"waves" must grow from above 0 to 1 (cumulative shares), got %v`, r.Waves))
				break
			}
		}
		if r.Waves[n-1] != 1 {
			errs = append(errs, fmt.Errorf(`the last of "waves" must be 1 (every device), got %v`, r.Waves[n-1]))
		}
	}
	if r.Start.IsZero() {
		errs = append(errs, errors.New(`"start" is missing: when the first wave opens (RFC 3339)`))
	}
	if iv := time.Duration(r.Interval); iv < 0 || iv > maxInterval {
		errs = append(errs, fmt.Errorf(`"interval" is %v; use 0 to %v`, iv, maxInterval))
	}
	if d := time.Duration(r.DeferMax); d < 0 || d > maxInterval {
		errs = append(errs, fmt.Errorf(`"defer_max" is %v; use 0 to %v`, d, maxInterval))
	}
	if len(r.Windows) > MaxWindows {
		errs = append(errs, fmt.Errorf(`%d "windows", over the limit of %d`, len(r.Windows), MaxWindows))
	}
	if a := r.Abort; a != nil && (math.IsNaN(a.FailedPercent) || a.FailedPercent < 0 || a.FailedPercent > 100 || a.MinFinished < 0) {
		errs = append(errs, fmt.Errorf(`"abort": failed_percent must be 0 to 100 and min_finished at least 0, got %v and %d`, a.FailedPercent, a.MinFinished))
	}
	return errors.Join(errs...)
}

// checkRollout checks an envelope's rollout, if it has one, for messages
// about what.
func checkRollout(what string, r *Rollout) error {
	if r == nil {
		return nil
	}
	if b, _ := json.Marshal(r); len(b) > maxRolloutJSON {
		return newError(ErrMalformed, nil, `fleet: %s: "rollout" is %d bytes of JSON, over the limit of %d`, what, len(b), maxRolloutJSON)
	}
	if err := r.Check(); err != nil {
		return newError(ErrMalformed, err, `fleet: %s: "rollout": %v`, what, err)
	}
	return nil
}

// rolloutLine is the line an envelope's signature covers for its rollout:
// none without one, so envelopes without a rollout keep the signed bytes
// they always had.
func rolloutLine(r *Rollout) []string {
	if r == nil {
		return nil
	}
	b, _ := json.Marshal(r) // field order is fixed: the same policy, the same bytes
	return []string{"rollout " + string(b)}
}

// RolloutScope is the scope of a rollout's control messages:
// "rollout/<id>".
func RolloutScope(id string) string { return "rollout/" + id }

// RolloutState is what a rollout's control message says devices do.
type RolloutState string

// Rollout states.
const (
	// RolloutRunning: devices apply the change when their wave opens.
	RolloutRunning RolloutState = "running"
	// RolloutPaused: devices that have not applied the change wait; a
	// later running control resumes.
	RolloutPaused RolloutState = "paused"
	// RolloutAborted: devices that have not applied the change never
	// will; a later control of the rollout cannot undo it.
	RolloutAborted RolloutState = "aborted"
)

// RolloutControl says whether a rollout runs. It is published retained,
// QoS 1, signed, on the rollout's topic ([Topics.Rollout]): tern rollout
// start publishes "running", pause "paused", resume "running" again and
// abort "aborted", each with a higher version. A device acts on a rollout
// only once it has heard its control on its current connection, so a
// device that was offline while the rollout was halted learns it before it
// could act.
//
//	{"format":2,"prefix":"tern","fleet":"demo","rollout":"relay-5","version":2,
//	 "state":"paused","reason":"failed > 5% once 20 have finished (3 of 20)",
//	 "what":"module relay version 5","scope":"module/relay","policy":{…},"key":"…","sig":"…"}
type RolloutControl struct {
	// Format is always Format (2).
	Format int    `json:"format"`
	Prefix string `json:"prefix"`
	Fleet  string `json:"fleet"`
	// Rollout is the rollout's id (Rollout.ID).
	Rollout string `json:"rollout"`
	// Version orders the controls of one rollout.
	Version uint64       `json:"version"`
	State   RolloutState `json:"state"`
	// Reason says why, for people: at most MaxReason bytes.
	Reason string `json:"reason,omitempty"`
	// What names the change the rollout governs ("module relay version
	// 5", "target group/boiler version 7"), Scope where it is published
	// (group/<name>, device/<id>, module/<name>, agent/<arch>), and
	// Policy the rollout itself: tern rollout status and watch read them
	// from here, with the devices' reports.
	What   string    `json:"what,omitempty"`
	Scope  string    `json:"scope,omitempty"`
	Policy *Rollout  `json:"policy,omitempty"`
	Issued time.Time `json:"issued,omitzero"`
	Key    string    `json:"key,omitempty"`
	Sig    []byte    `json:"sig,omitempty"`
}

// MaxReason bounds a rollout control's reason, in bytes.
const MaxReason = 1 << 10

// ParseRolloutControl reads a rollout control received from the broker. It
// refuses what ParseTargetEnvelope refuses, an unknown state, a reason
// over MaxReason, and a policy that does not check or names another
// rollout.
func ParseRolloutControl(b []byte) (RolloutControl, error) {
	const what = "rollout control"
	var c RolloutControl
	if err := decode(envelopeKind(what, "tern rollout", MaxPayload, "keep its reason short"), b, &c); err != nil {
		return RolloutControl{}, err
	}
	if err := checkAddress(what, "tern rollout --fleet NAME", c.Prefix, c.Fleet); err != nil {
		return RolloutControl{}, err
	}
	if p := idProblem(c.Rollout); p != "" {
		return RolloutControl{}, newError(ErrMalformed, nil, `fleet: %s: bad "rollout": %s`, what, p)
	}
	if err := checkVersion(what+" of "+c.Rollout, "start", c.Version); err != nil {
		return RolloutControl{}, err
	}
	switch c.State {
	case RolloutRunning, RolloutPaused, RolloutAborted:
	default:
		return RolloutControl{}, newError(ErrMalformed, nil, `fleet: %s of %s: "state" is %.40q; want "running", "paused" or "aborted"`, what, c.Rollout, c.State)
	}
	if len(c.Reason) > MaxReason || len(c.What) > MaxReason {
		return RolloutControl{}, newError(ErrMalformed, nil, `fleet: %s of %s: "reason" or "what" is over %d bytes`, what, c.Rollout, MaxReason)
	}
	if c.Policy != nil {
		if err := checkRollout(what+" of "+c.Rollout, c.Policy); err != nil {
			return RolloutControl{}, err
		}
		if c.Policy.ID != c.Rollout {
			return RolloutControl{}, newError(ErrMalformed, nil, `fleet: %s of %s: its "policy" is rollout %.70q's`, what, c.Rollout, c.Policy.ID)
		}
	}
	return c, nil
}

func (c RolloutControl) signedBytes() []byte {
	pol, _ := json.Marshal(c.Policy)
	return signedBytes("tern rollout", c.Prefix, c.Fleet, RolloutScope(c.Rollout), c.Version,
		string(c.State), jsonLine(c.Reason), jsonLine(c.What), jsonLine(c.Scope), string(pol))
}

// jsonLine quotes s, so no text can pass for another line.
func jsonLine(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// SetTopics makes the control for the fleet and topic prefix of t.
func (c *RolloutControl) SetTopics(t Topics) { c.Prefix, c.Fleet = t.prefix(), t.Fleet }

// CheckTopics reports whether the control is for the fleet of t.
func (c RolloutControl) CheckTopics(t Topics) error {
	return checkTopics(fmt.Sprintf("rollout control of %s version %d", c.Rollout, c.Version), c.Prefix, c.Fleet, t, "tern rollout")
}

// Sign signs the control with the operator's key; SetTopics first.
func (c *RolloutControl) Sign(priv ed25519.PrivateKey) { c.Key, c.Sig = sign(priv, c.signedBytes()) }

// Verify checks the control's signature against the device's trust store.
func (c RolloutControl) Verify(trust signing.Trust) error {
	return verify(trust, c.Key, c.Sig, c.signedBytes(),
		"rollout controls", "use tern rollout with --key", fmt.Sprintf("for rollout %s, version %d", c.Rollout, c.Version))
}

// Rollout is where a rollout's control is published, retained:
// <prefix>/<fleet>/rollouts/<id>.
func (t Topics) Rollout(id string) string { return t.base() + "/rollouts/" + id }

// PublishRolloutControl publishes c, retained, QoS 1, on its rollout's
// topic. It refuses what a device would refuse.
func (o *Operator) PublishRolloutControl(ctx context.Context, c RolloutControl) error {
	if c.Format == 0 {
		c.Format = Format
	}
	what := fmt.Sprintf("rollout control of %s (%s)", c.Rollout, c.State)
	if err := o.address(what, c.Key != "", &c.Prefix, &c.Fleet, func(t Topics) error { return c.CheckTopics(t) }); err != nil {
		return err
	}
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("fleet: %s: encode: %w", what, err)
	}
	if _, err := ParseRolloutControl(b); err != nil {
		return fmt.Errorf("fleet: not publishing what devices would refuse: %w", err)
	}
	return o.publishRetained(ctx, "publish "+what, o.opts.Topics.Rollout(c.Rollout), b, o.opts.ConnectTimeout)
}

// RetainedRolloutControls reads the rollout controls retained on the
// broker: every rollout's when id is empty, else id's. It collects until
// none arrived for wait. Controls that do not parse are logged and left
// out; signatures are not checked (devices do).
func (o *Operator) RetainedRolloutControls(ctx context.Context, id string, wait time.Duration) ([]RolloutControl, error) {
	leaf := "+"
	if id != "" {
		if p := idProblem(id); p != "" {
			return nil, fmt.Errorf("fleet: read rollouts: rollout id: %s", p)
		}
		leaf = id
	}
	t := o.opts.Topics
	by := map[string]RolloutControl{}
	err := o.readRetained(ctx, []string{t.Rollout(leaf)}, wait, func(topic string, payload []byte) {
		c, err := ParseRolloutControl(payload)
		if err == nil {
			err = c.CheckTopics(t)
		}
		if err == nil && topic != t.Rollout(c.Rollout) {
			err = fmt.Errorf("control of rollout %q on the topic of another", c.Rollout)
		}
		if err != nil {
			o.log.Warn("fleet: a retained rollout control devices refuse; left out", "topic", topic, "err", err)
			return
		}
		by[c.Rollout] = c
	})
	out := make([]RolloutControl, 0, len(by))
	for _, c := range by {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b RolloutControl) int { return strings.Compare(a.Rollout, b.Rollout) })
	return out, err
}
