package fleet

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/runtime/store"
)

// Releases decides which module releases a device installs, as the
// contract orders them (docs/mqtt.md, "Module releases"): those signed by a
// trusted key (when keys are configured), that pass CheckCode, and newer
// than the newest accepted for their module. The version and the code's
// SHA-256 accepted last are kept in the store, so an old release retained
// on the broker, or replayed, is refused after a restart too, and so is
// that version with other code.
//
// The device end (Device) has checked the release's form, its topic and
// that it was made for the device's fleet and prefix.
type Releases struct {
	store store.Store
	trust signing.Trust
	// CheckCode, if set, refuses a release for its code (ternd: code whose
	// manifest names another module), after the signature and before the
	// versions are compared.
	CheckCode func(ReleaseEnvelope) error

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

// NewReleases reads what st holds of the releases accepted before.
func NewReleases(st store.Store, trust signing.Trust) (*Releases, error) {
	r := &Releases{store: st, trust: trust, held: map[string]uint64{}, code: map[string]heldRelease{}, checked: map[string]heldRelease{}}
	for _, k := range []struct {
		key []byte
		v   any
	}{{keyReleases, &r.held}, {keyReleaseCode, &r.code}} {
		b, err := st.Get(k.key)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, fmt.Errorf("fleet: reading module release versions: %w", err)
		default:
			if err := json.Unmarshal(b, k.v); err != nil {
				return nil, fmt.Errorf("fleet: stored module release versions (%s) are corrupt (%v): remove the data directory's store to start over", k.key, err)
			}
		}
	}
	return r, nil
}

// Check says whether env is a release to install: fresh is false for the
// release accepted last, delivered again (the retained release after a
// reconnect); err says why env is refused, and what to do.
func (r *Releases) Check(env ReleaseEnvelope) (fresh bool, err error) {
	refused := func(format string, args ...any) (bool, error) {
		return false, fmt.Errorf("module %s release version %d refused: %s", env.Module, env.Version, fmt.Sprintf(format, args...))
	}
	if len(r.trust) > 0 {
		if err := env.Verify(r.trust); err != nil {
			return false, fmt.Errorf("module %s release version %d refused: %w", env.Module, env.Version, err)
		}
	}
	if r.CheckCode != nil && (len(env.Wasm) > 0 || env.Chunks == nil) { // a manifest's code comes later
		if err := r.CheckCode(env); err != nil {
			return refused("%v", err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	held := heldRelease{Version: r.held[env.Module]}
	if c := r.code[env.Module]; c.Version == held.Version {
		held.SHA256 = c.SHA256 // else unknown: accepted by a ternd that kept versions only
	}
	switch {
	case held.Version > MaxVersion:
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

// Accept records version as the release of module tried last: a release
// is tried once, installed or refused by the agent. The code recorded is
// the one of the release Check passed last with that version.
func (r *Releases) Accept(module string, version uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.checked[module]
	delete(r.checked, module)
	if held := r.held[module]; version < held && held <= MaxVersion {
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
