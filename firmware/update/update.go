// Package update keeps ternd's own binary: it stages a new release beside
// the running one, swaps it in atomically, decides at every start which
// binary runs, and rolls back to the previous one when a new one does not
// prove itself healthy.
//
// The layout, in Dir (ternd uses <data_dir>/agent, /var/lib/tern/agent):
//
//	ternd-<version>   release binaries, written whole and synced before use
//	current           symlink to the binary that runs (absent: the packaged one)
//	previous          symlink to the binary that ran before the last swap
//	state.json        the update in progress or its outcome (State)
//
// systemd always starts the packaged binary (/usr/bin/ternd, read-only,
// never changed by an update); it calls [Dir.Boot], which says which binary
// to exec. Every change is a rename of a file or symlink written and synced
// beside it, so a power cut at any moment leaves either the old or the new
// name in place, both complete: the agent always has a binary to start.
package update

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tern-iot/tern/internal/atomicfile"
)

// Phases of State.
const (
	// PhaseNone: no update was ever tried, or its outcome was reported.
	PhaseNone = ""
	// PhaseTrial: current is a new binary that has not yet proven healthy.
	PhaseTrial = "trial"
	// PhaseCommitted: the new binary proved healthy and stays.
	PhaseCommitted = "committed"
	// PhaseRolledBack: the new binary failed; previous runs again.
	PhaseRolledBack = "rolled_back"
)

// MaxTrialBoots is how many times a binary on trial is started before it
// is rolled back without waiting for its health check: one that crashes or
// hangs at start never reaches the check.
const MaxTrialBoots = 3

// State is state.json: the last update and where it stands.
type State struct {
	Phase string `json:"phase"`
	// Version is the release version of the update (fleet.AgentRelease)
	// and AgentVersion ternd's own version string in it.
	Version      uint64 `json:"version,omitempty"`
	AgentVersion string `json:"agent_version,omitempty"`
	// Binary is the new binary's file name in Dir, Previous the path the
	// current symlink held before the swap ("" for the packaged binary).
	Binary   string `json:"binary,omitempty"`
	Previous string `json:"previous,omitempty"`
	// Boots counts starts of the binary on trial.
	Boots int `json:"boots,omitempty"`
	// Reason says why an update was rolled back.
	Reason string `json:"reason,omitempty"`
	// Reported is set once the outcome was handed to the fleet as an event.
	Reported bool `json:"reported,omitempty"`
	// Tried is the highest release version tried: older or equal ones
	// (a retained release delivered again, a replay) are not tried again.
	Tried uint64 `json:"tried,omitempty"`
	// TriedSHA256 is the SHA-256 of the binary of release Tried, so that
	// the same version with another binary is told apart from the same
	// release delivered again ("" when unknown: an older state file).
	TriedSHA256 string `json:"tried_sha256,omitempty"`
}

// Dir is the agent directory. Hook, if set, is called before each step of
// Stage, Swap and Rollback with the step's name: tests use it to cut the
// power there.
type Dir struct {
	Path string
	Hook func(step string)
}

const (
	stateFile   = "state.json"
	currentLink = "current"
	prevLink    = "previous"
)

func (d Dir) hook(step string) {
	if d.Hook != nil {
		d.Hook(step)
	}
}

func (d Dir) path(name string) string { return filepath.Join(d.Path, name) }

// Load reads state.json. A missing file is the zero State; a corrupt one
// (a file system that lost it) is reported with the zero State, so a
// caller can go on with the current binary.
func (d Dir) Load() (State, error) {
	var st State
	b, err := os.ReadFile(d.path(stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("update: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return State{}, fmt.Errorf("update: %s is corrupt (%v); going on with the current binary", d.path(stateFile), err)
	}
	return st, nil
}

// Save writes state.json atomically and durably.
func (d Dir) Save(st State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return d.writeFile(stateFile, append(b, '\n'), 0o644)
}

// Current is the binary the current symlink names, as an absolute path, or
// "" if there is none (the packaged binary runs).
func (d Dir) Current() string {
	t, err := os.Readlink(d.path(currentLink))
	if err != nil {
		return ""
	}
	if !filepath.IsAbs(t) {
		t = d.path(t)
	}
	return t
}

// BinaryName is the file name of release version's binary.
func BinaryName(version uint64) string { return "ternd-" + strconv.FormatUint(version, 10) }

// Stage writes bin as release version's binary, executable, synced, and
// checks what was written against sha256 (hex). It returns its path. A
// cut in the middle leaves only a temporary file, which the next Stage
// replaces.
func (d Dir) Stage(version uint64, bin []byte, sha string) (string, error) {
	if err := os.MkdirAll(d.Path, 0o750); err != nil {
		return "", fmt.Errorf("update: %w", err)
	}
	d.hook("stage")
	name := BinaryName(version)
	if err := d.writeFile(name, bin, 0o755); err != nil {
		return "", err
	}
	p := d.path(name)
	got, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("update: reading back the staged binary: %w", err)
	}
	if sum := sha256.Sum256(got); hex.EncodeToString(sum[:]) != sha {
		os.Remove(p)
		return "", fmt.Errorf("update: the staged binary %s reads back with SHA-256 %x, not %s: the storage is failing", p, sum, sha)
	}
	return p, nil
}

// Swap makes the staged binary of st.Version current, with st (Phase
// trial, Boots 0) recorded first, and previous naming what ran before; it
// returns the State recorded.
// The caller then restarts into it. The steps, in order, each one atomic:
// previous → the old binary; state.json → trial; current → the new one.
// A cut before the last step leaves current on the old binary; Boot then
// sees a trial whose binary is not current and ends it.
func (d Dir) Swap(st State) (State, error) {
	old := d.Current()
	if old != "" {
		if _, err := os.Stat(old); err != nil {
			old = "" // current names a binary gone missing: the packaged one is what runs
		}
	}
	d.hook("previous")
	if old == "" {
		if err := d.remove(prevLink); err != nil {
			return st, err
		}
	} else if err := d.symlink(old, prevLink); err != nil {
		return st, err
	}
	st.Phase, st.Boots, st.Binary, st.Previous, st.Reason, st.Reported = PhaseTrial, 0, BinaryName(st.Version), old, "", false
	st.Tried = max(st.Tried, st.Version)
	d.hook("state")
	if err := d.Save(st); err != nil {
		return st, err
	}
	d.hook("current")
	if err := d.symlink(d.path(st.Binary), currentLink); err != nil {
		return st, err
	}
	d.hook("swapped")
	return st, nil
}

// Commit ends a trial: the new binary stays. It removes binaries neither
// current nor previous.
func (d Dir) Commit(st State) error {
	st.Phase, st.Reported = PhaseCommitted, false
	if err := d.Save(st); err != nil {
		return err
	}
	d.clean()
	return nil
}

// Rollback ends a trial: current goes back to what it named before (the
// packaged binary if nothing), and state.json says why. The caller then
// restarts. A cut between the two steps leaves current on the old binary
// and the state on trial, which Boot ends as a rollback.
func (d Dir) Rollback(st State, reason string) (State, error) {
	d.hook("rollback")
	if st.Previous == "" {
		if err := d.remove(currentLink); err != nil {
			return st, err
		}
	} else if err := d.symlink(st.Previous, currentLink); err != nil {
		return st, err
	}
	d.hook("rolled-back")
	st.Phase, st.Reason, st.Reported = PhaseRolledBack, reason, false
	return st, d.Save(st)
}

// Boot runs at every start of ternd, before anything else. self is the
// running binary; it returns the binary to exec instead, or "" to go on
// as self. It counts the starts of a binary on trial and rolls it back
// after MaxTrialBoots, and ends a trial a cut swap or rollback left
// behind. Boot never fails: an error is for the log, and the agent starts
// with whatever binary it could find (self at worst).
func (d Dir) Boot(self string) (exec string, st State, err error) {
	atomicfile.RemoveTemps(d.Path) // nothing else writes here before Boot returns
	st, err = d.Load()
	cur := d.Current()
	if st.Phase == PhaseTrial {
		switch {
		case cur != d.path(st.Binary):
			st.Phase, st.Reported = PhaseRolledBack, false
			st.Reason = "the swap or its rollback was cut short (a power cut?); the previous binary runs"
			if cur == "" && st.Previous != "" {
				st.Reason = "current was removed (installing a package does that); the packaged binary runs"
			}
			err = errors.Join(err, d.Save(st))
		case !executable(cur):
			st, err = d.Rollback(st, fmt.Sprintf("the new binary %s is gone or not an executable file (is the storage failing?)", cur))
			cur = d.Current()
		case st.Boots >= MaxTrialBoots:
			st, err = d.Rollback(st, fmt.Sprintf("the new binary did not prove healthy in %d starts (it crashed, hung or could not connect)", st.Boots))
			cur = d.Current()
		default:
			st.Boots++
			err = errors.Join(err, d.Save(st))
		}
	}
	if cur == "" || !executable(cur) {
		if cur != "" {
			err = errors.Join(err, fmt.Errorf("update: %s is not an executable file; running %s", cur, self))
		}
		return "", st, err
	}
	if sameFile(cur, self) {
		return "", st, err
	}
	return cur, st, err
}

// OnTrial reports whether self is the binary on trial in st.
func (d Dir) OnTrial(st State, self string) bool {
	return st.Phase == PhaseTrial && sameFile(d.path(st.Binary), self)
}

// Reset forgets the update state and current: the packaged binary runs at
// the next start. The Debian package's postinst does the same (it removes
// current), so that installing a package means running it.
func (d Dir) Reset() error {
	return d.remove(currentLink)
}

func (d Dir) clean() {
	keep := map[string]bool{}
	for _, l := range []string{currentLink, prevLink} {
		if t, err := os.Readlink(d.path(l)); err == nil {
			keep[filepath.Base(t)] = true
		}
	}
	ents, _ := os.ReadDir(d.Path)
	for _, e := range ents {
		if n := e.Name(); strings.HasPrefix(n, "ternd-") && !keep[n] {
			os.Remove(d.path(n))
		}
	}
	atomicfile.RemoveTemps(d.Path)
}

func executable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 && fi.Size() > 0
}

func sameFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}

// writeFile writes name in d atomically (see atomicfile).
func (d Dir) writeFile(name string, b []byte, perm os.FileMode) error {
	if err := atomicfile.Write(d.path(name), b, perm); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	return nil
}

// symlink points name at target atomically: a new link renamed over it.
func (d Dir) symlink(target, name string) error {
	tmp := d.path("." + name + ".tmp")
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	if err := os.Rename(tmp, d.path(name)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("update: %w", err)
	}
	return d.syncDir()
}

func (d Dir) remove(name string) error {
	if err := os.Remove(d.path(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("update: %w", err)
	}
	return d.syncDir()
}

func (d Dir) syncDir() error {
	if err := atomicfile.SyncDir(d.Path); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	return nil
}
