package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/modfile"
	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/runtime/store"
)

// releases decides which module releases from the fleet reach the agent:
// those signed by a trusted key (when keys are configured), whose code
// calls itself by the module's name, and newer than the newest accepted
// for their module. The version and the code's SHA-256 accepted last are
// kept in the store, so an old release retained on the broker, or
// replayed, is refused after a restart too, and so is that version with
// other code.
//
// The fleet layer has checked the release's form, its topic and that it
// was made for this device's fleet and prefix (fleet.Device).
type releases struct {
	store store.Store
	trust signing.Trust

	mu   sync.Mutex
	held map[string]uint64      // module → highest release version accepted
	code map[string]heldRelease // module → the version accepted last and its code
	// checked is, per module, the release check passed last, so accept
	// (which gets the module and the version) records its code too.
	checked map[string]heldRelease
}

// heldRelease is a release of a module, as far as ordering goes.
type heldRelease struct {
	Version uint64 `json:"version"`
	SHA256  string `json:"sha256"` // of the code, in hex
}

// The versions keep the layout ternd always stored (module → version), so
// that a ternd rolled back to an older binary still reads them; the code's
// hashes go under their own key, each with its version, so one left behind
// by an older ternd, which updates only the versions, is seen as stale.
var (
	keyReleases    = []byte("fleet/releases")
	keyReleaseCode = []byte("fleet/release-code")
)

func newReleases(st store.Store, trust signing.Trust) (*releases, error) {
	r := &releases{store: st, trust: trust, held: map[string]uint64{}, code: map[string]heldRelease{}, checked: map[string]heldRelease{}}
	for _, k := range []struct {
		key []byte
		v   any
	}{{keyReleases, &r.held}, {keyReleaseCode, &r.code}} {
		b, err := st.Get(k.key)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, fmt.Errorf("ternd: reading module release versions: %w", err)
		default:
			if err := json.Unmarshal(b, k.v); err != nil {
				return nil, fmt.Errorf("ternd: stored module release versions (%s) are corrupt (%v): remove the data directory's store to start over", k.key, err)
			}
		}
	}
	return r, nil
}

// check says whether env is a release to install: fresh is false for the
// release accepted last, delivered again (the retained release after a
// reconnect); err says why env is refused, and what to do.
func (r *releases) check(env fleet.ReleaseEnvelope) (fresh bool, err error) {
	refused := func(format string, args ...any) (bool, error) {
		return false, fmt.Errorf("module %s release version %d refused: %s", env.Module, env.Version, fmt.Sprintf(format, args...))
	}
	if len(r.trust) > 0 {
		if err := env.Verify(r.trust); err != nil {
			return false, fmt.Errorf("module %s release version %d refused: %w", env.Module, env.Version, err)
		}
	}
	// The code's own name, when it carries its manifest (tern module build
	// and tern release embed it): a release on the topic of relay that
	// calls itself evil would run with relay's grants. Code without the
	// section is named by its tern_describe, which the runtime checks.
	if man, ok, err := modfile.Manifest(env.Wasm); err == nil && ok && man.Name != env.Module {
		return refused("the code calls itself %q (its manifest), but it came on the topic of module %s, whose grants it would run with; release it as --module %s, or build it named %s",
			man.Name, env.Module, man.Name, env.Module)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	held := heldRelease{Version: r.held[env.Module]}
	if c := r.code[env.Module]; c.Version == held.Version {
		held.SHA256 = c.SHA256 // else unknown: accepted by a ternd that kept versions only
	}
	switch {
	case held.Version > fleet.MaxVersion:
		// Accepted before versions had a ceiling: no release could follow
		// it, so the next one does, whatever its version.
	case env.Version < held.Version:
		return refused("older than the version %d accepted (a replay, or a release with a lower --version); release a version above %d",
			held.Version, held.Version)
	case env.Version == held.Version && (held.SHA256 == "" || held.SHA256 == env.SHA256):
		return false, nil
	case env.Version == held.Version:
		return refused("version %d is already installed with other code (sha256 %.12s…; this release's is %.12s…); a version names one release, so release it as a higher version (above %d)",
			held.Version, held.SHA256, env.SHA256, held.Version)
	}
	r.checked[env.Module] = heldRelease{Version: env.Version, SHA256: env.SHA256}
	return true, nil
}

// accept records version as the release of module tried last: a release
// is tried once, installed or refused by the agent. The code recorded is
// the one of the release check passed last with that version.
func (r *releases) accept(module string, version uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.checked[module]
	delete(r.checked, module)
	if held := r.held[module]; version < held && held <= fleet.MaxVersion {
		return nil
	}
	r.held[module] = version
	if ok && c.Version == version {
		r.code[module] = c
	} else {
		delete(r.code, module)
	}
	for _, k := range []struct {
		key []byte
		v   any
	}{{keyReleases, r.held}, {keyReleaseCode, r.code}} {
		b, err := json.Marshal(k.v)
		if err == nil {
			err = r.store.Put(k.key, b)
		}
		if err != nil {
			return fmt.Errorf("storing module release versions: %w", err)
		}
	}
	return nil
}
