package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tern-iot/tern/firmware/update"
	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/internal/version"
	"github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/runtime/api"
)

// ErrRestart is what Run returns when ternd must start again: a new binary
// was swapped in, or one that failed its health check was rolled back.
// ternd exits with ExitRestart; systemd (Restart=on-failure) starts it
// again, and Boot picks the binary.
var ErrRestart = errors.New("ternd: restarting into another binary")

// ExitRestart is ternd's exit code for ErrRestart (EX_TEMPFAIL).
const ExitRestart = 75

// BootedEnv is set in the environment of a binary Boot chose, so that it
// does not choose again.
const BootedEnv = "TERN_BOOTED"

// Event kinds of agent (ternd) updates. Like the runtime's, they are part
// of the fleet contract and never renamed.
const (
	EventUpdateReceived   runtime.EventKind = "agent.update.received"    // an agent release arrived and will be tried
	EventUpdateRefused    runtime.EventKind = "agent.update.refused"     // signature, architecture, smoke test or storage: the running binary stays
	EventUpdateStaged     runtime.EventKind = "agent.update.staged"      // the new binary is on disk, checked, and runs on this CPU
	EventUpdateSwapped    runtime.EventKind = "agent.update.swapped"     // the new binary is current; ternd restarts into it
	EventUpdateCommitted  runtime.EventKind = "agent.update.committed"   // the new binary passed its health check and stays
	EventUpdateRolledBack runtime.EventKind = "agent.update.rolled_back" // the new binary failed; the previous one runs again
)

// AgentDir is where ternd keeps its own binaries: <data_dir>/agent.
func AgentDir(cfg Config) update.Dir {
	return update.Dir{Path: filepath.Join(cfg.withDefaults().DataDir, "agent")}
}

// BootDataDir reads only data_dir from the configuration file at path,
// leniently: Boot must run before the configuration is checked, because
// an updated binary may accept what this one refuses (a new option), and
// refusing it here would never start the binary that understands it.
func BootDataDir(path string) string {
	var c struct {
		DataDir string `yaml:"data_dir"`
	}
	if b, err := os.ReadFile(path); err == nil {
		yaml.Unmarshal(b, &c) // what did decode is enough; LoadConfig reports the rest
	}
	switch {
	case c.DataDir == "":
		return Config{}.withDefaults().DataDir
	case !filepath.IsAbs(c.DataDir):
		return filepath.Join(filepath.Dir(path), c.DataDir)
	}
	return c.DataDir
}

// Boot decides which binary runs, before anything else at start (see
// update.Dir.Boot), from the data directory's agent state: it returns a
// binary to exec instead of this one, or "". Errors are logged: the agent
// starts whatever happens.
func Boot(dataDir string, log *slog.Logger) string {
	if os.Getenv(BootedEnv) != "" {
		return ""
	}
	self, err := os.Executable()
	if err != nil {
		log.Warn("cannot find the running binary; not looking for an updated one", "err", err)
		return ""
	}
	exe, st, err := AgentDir(Config{DataDir: dataDir}).Boot(self)
	if err != nil {
		log.Warn("agent update state", "err", err)
	}
	if st.Phase == update.PhaseTrial {
		log.Info("starting a new agent binary on trial", "version", st.Version, "agent_version", st.AgentVersion, "start", st.Boots)
	}
	return exe
}

// updater applies agent releases and watches over a binary on trial.
type updater struct {
	dir     update.Dir
	self    string
	arch    string
	trust   signing.Trust
	health  time.Duration
	log     *slog.Logger
	publish func(runtime.Event)

	mu sync.Mutex // serializes apply with the trial's commit or rollback
}

func (u *updater) event(kind runtime.EventKind, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	u.log.Info("agent update: "+msg, "kind", kind)
	u.publish(runtime.Event{ID: runtime.NewEventID(), Time: time.Now().UTC(), Kind: kind, Message: msg})
}

// apply tries an agent release: it returns ErrRestart when the new binary
// was swapped in.
func (u *updater) apply(ctx context.Context, r fleet.AgentRelease) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	st, err := u.dir.Load()
	if err != nil {
		u.log.Warn("agent update state", "err", err)
	}
	if r.Version == st.Tried && st.TriedSHA256 != "" && r.SHA256 != st.TriedSHA256 && r.Verify(u.trust) == nil {
		// Signed, but not the release tried as this version: a mistake or
		// a replay, and the operator must hear of either.
		u.event(EventUpdateRefused, "release %d (ternd %s for %s) refused: version %d was already tried here with another binary (sha256 %.12s, this one %.12s); release it as a version above %d",
			r.Version, orUnknown(r.AgentVersion), r.Arch, r.Version, st.TriedSHA256, r.SHA256, r.Version)
		return nil
	}
	if r.Version <= st.Tried {
		u.log.Debug("agent release already tried", "version", r.Version, "tried", st.Tried)
		return nil
	}
	if st.Phase == update.PhaseTrial {
		// One update at a time: this one is not marked tried, so it comes
		// again with the retained message at the next connect.
		u.log.Info("agent release waits: the running binary is still on trial", "version", r.Version, "on_trial", st.Version)
		return nil
	}
	what := fmt.Sprintf("release %d (ternd %s for %s, %d bytes)", r.Version, orUnknown(r.AgentVersion), r.Arch, r.Size)
	u.event(EventUpdateReceived, "%s received", what)
	loaded := st
	refuse := func(err error) error {
		st := loaded
		st.Tried, st.TriedSHA256 = max(st.Tried, r.Version), r.SHA256
		if serr := u.dir.Save(st); serr != nil {
			u.log.Error("agent update state not saved; the release may be tried again", "err", serr)
		}
		u.event(EventUpdateRefused, "%s refused: %v; the running binary stays (to try again, release a fixed one with a version above %d)", what, err, r.Version)
		return nil
	}
	// A failure of this device's, not of the release: it is tried again
	// with the retained release at the next connect or start.
	notNow := func(err error) error {
		if ctx.Err() != nil {
			u.log.Info("agent release interrupted; it is tried again at the next start", "version", r.Version, "err", err)
			return nil
		}
		u.event(EventUpdateRefused, "%s not applied: %v; the running binary stays, and the release is tried again at the next connect", what, err)
		return nil
	}
	if len(u.trust) == 0 {
		return notNow(errors.New("this device trusts no operator key, and agent releases must be signed: add trusted_keys to ternd.yaml and restart ternd"))
	}
	if err := r.Verify(u.trust); err != nil {
		return refuse(err)
	}
	if r.Arch != u.arch {
		return refuse(fmt.Errorf("built for %s, but this device runs %s; release a ternd for %s", r.Arch, u.arch, u.arch))
	}
	bin, err := u.dir.Stage(r.Version, r.Binary, r.SHA256)
	if err != nil {
		return notNow(err) // the disk: full, or failing
	}
	if err := smokeTest(ctx, bin, r.AgentVersion, u.arch); err != nil {
		os.Remove(bin)
		if ctx.Err() != nil {
			return notNow(err)
		}
		return refuse(err)
	}
	u.event(EventUpdateStaged, "%s staged in %s; it runs on this CPU", what, bin)
	st.Version, st.AgentVersion, st.TriedSHA256 = r.Version, r.AgentVersion, r.SHA256
	swapped, err := u.dir.Swap(st)
	if err != nil {
		return notNow(err)
	}
	st = swapped
	u.event(EventUpdateSwapped, "%s is now current (previous: %s); restarting into it, health check within %v", what, orPackaged(st.Previous), u.health)
	return ErrRestart
}

// smokeTest runs bin version: a binary for another CPU, or one cut short,
// fails here rather than at the restart; one built for another
// architecture than its release says (an armv6 build released as armv7)
// is refused too, or the device would follow the other architecture's
// releases from then on.
func smokeTest(ctx context.Context, bin, want, arch string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "version").CombinedOutput()
	if err != nil {
		return fmt.Errorf("the new binary does not run here (%s version: %v: %.200s)", bin, err, out)
	}
	said := strings.TrimSpace(string(out))
	if !strings.HasPrefix(said, "ternd ") || (want != "" && !strings.Contains(said, want)) {
		return fmt.Errorf("the new binary says %.200q, not ternd %s", said, want)
	}
	if !strings.HasSuffix(said, "/"+arch) {
		return fmt.Errorf("the new binary says %.200q: it is not built for %s", said, arch)
	}
	return nil
}

// settle runs at start when this binary is not on trial: a trial the
// state still shows failed to start (Boot chose the new binary, but its
// exec failed and this one runs instead), so it is rolled back; then the
// outcome the fleet has not heard of is reported.
func (u *updater) settle(st update.State) {
	if st.Phase == update.PhaseTrial {
		reason := fmt.Sprintf("the new binary %s could not be started; %s runs instead", u.dir.Current(), u.self)
		rolled, err := u.dir.Rollback(st, reason)
		if err != nil {
			u.log.Error("agent update: rollback failed; Boot ends the trial at the next start", "err", err)
			return
		}
		st = rolled
	}
	u.reportOutcome(st)
}

// reportOutcome hands an update's outcome the fleet has not heard of yet
// to it: a rollback Boot did, or one before a restart.
func (u *updater) reportOutcome(st update.State) {
	if st.Reported || (st.Phase != update.PhaseCommitted && st.Phase != update.PhaseRolledBack) {
		return
	}
	what := fmt.Sprintf("release %d (ternd %s)", st.Version, orUnknown(st.AgentVersion))
	if st.Phase == update.PhaseCommitted {
		u.event(EventUpdateCommitted, "%s passed its health check and stays; running %s", what, version.String("ternd"))
	} else {
		u.event(EventUpdateRolledBack, "%s rolled back: %s; running %s", what, st.Reason, version.String("ternd"))
	}
	st.Reported = true
	if err := u.dir.Save(st); err != nil {
		u.log.Warn("agent update state not saved; the outcome may be reported again", "err", err)
	}
}

// trial watches the binary on trial: healthy within u.health, it is
// committed; otherwise rolled back, and trial returns ErrRestart.
func (u *updater) trial(ctx context.Context, st update.State, healthy func() error) error {
	deadline := time.NewTimer(u.health)
	defer deadline.Stop()
	poll := time.NewTicker(250 * time.Millisecond)
	defer poll.Stop()
	last := errors.New("not checked yet")
	for {
		select {
		case <-ctx.Done():
			return nil // stopped: the trial goes on at the next start (Boot counts it)
		case <-poll.C:
			if last = healthy(); last != nil {
				continue
			}
			u.mu.Lock()
			defer u.mu.Unlock()
			if err := u.dir.Commit(st); err != nil {
				u.log.Error("agent update: cannot commit; the trial goes on at the next start", "err", err)
				return nil
			}
			st.Phase = update.PhaseCommitted
			u.reportOutcome(st)
			return nil
		case <-deadline.C:
			u.mu.Lock()
			defer u.mu.Unlock()
			reason := fmt.Sprintf("not healthy within %v (%v)", u.health, last)
			st, err := u.dir.Rollback(st, reason)
			if err != nil {
				u.event(EventUpdateRolledBack, "release %d (ternd %s) failed its health check (%s), and the rollback failed (%v); restarting: the next start ends the trial",
					st.Version, orUnknown(st.AgentVersion), reason, err)
				return ErrRestart
			}
			u.event(EventUpdateRolledBack, "release %d (ternd %s) rolled back: %s; restarting into %s",
				st.Version, orUnknown(st.AgentVersion), reason, orPackaged(st.Previous))
			st.Reported = true
			if err := u.dir.Save(st); err != nil {
				u.log.Warn("agent update state not saved", "err", err)
			}
			return ErrRestart
		}
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

func orPackaged(s string) string {
	if s == "" {
		return "the packaged binary"
	}
	return s
}

// fresh reports whether r would be tried (a version above the ones tried)
// and is signed by a trusted key: what a rollout's gate may hold back.
// tried reports whether it was tried already.
func (u *updater) fresh(r fleet.AgentRelease) (fresh, tried bool) {
	st, err := u.dir.Load()
	if err != nil || len(u.trust) == 0 || r.Verify(u.trust) != nil {
		return false, false
	}
	return r.Version > st.Tried, r.Version <= st.Tried
}

// outcome says how agent release version went: "" while it is on trial
// (or not tried yet), done once it is committed, rolled back or refused.
func (u *updater) outcome(version uint64) (api.RolloutPhase, string, bool) {
	st, err := u.dir.Load()
	switch {
	case err != nil:
		return "", "", false
	case st.Version == version && st.Phase == update.PhaseCommitted:
		return api.RolloutSucceeded, "ternd " + orUnknown(st.AgentVersion) + " runs, and passed its health check", true
	case st.Version == version && st.Phase == update.PhaseRolledBack:
		return api.RolloutFailed, "rolled back: " + st.Reason, true
	case st.Version != version && st.Tried >= version:
		return api.RolloutFailed, "refused before the swap (the update events say why)", true
	}
	return "", "", false
}
