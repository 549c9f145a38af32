package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/runtime/store"
)

// releases decides which module releases from the fleet reach the agent:
// those signed by a trusted key (when keys are configured) and newer than
// the newest accepted for their module. The versions accepted are kept in
// the store, so an old release retained on the broker, or replayed, is
// refused after a restart too.
type releases struct {
	store store.Store
	trust signing.Trust

	mu   sync.Mutex
	held map[string]uint64 // module → highest release version accepted
}

var keyReleases = []byte("fleet/releases")

func newReleases(st store.Store, trust signing.Trust) (*releases, error) {
	r := &releases{store: st, trust: trust, held: map[string]uint64{}}
	b, err := st.Get(keyReleases)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("ternd: reading module release versions: %w", err)
	default:
		if err := json.Unmarshal(b, &r.held); err != nil {
			return nil, fmt.Errorf("ternd: stored module release versions are corrupt (%v): remove the data directory's store to start over", err)
		}
	}
	return r, nil
}

// check says whether env is a release to install: fresh is false for the
// version accepted last (delivered again after a reconnect); err says why
// env is refused.
func (r *releases) check(env fleet.ReleaseEnvelope) (fresh bool, err error) {
	if len(r.trust) > 0 {
		if err := env.Verify(r.trust); err != nil {
			return false, fmt.Errorf("module %s release version %d refused: %w", env.Module, env.Version, err)
		}
	}
	r.mu.Lock()
	held := r.held[env.Module]
	r.mu.Unlock()
	switch {
	case env.Version < held:
		return false, fmt.Errorf("module %s release version %d refused: older than the version %d accepted (a replay, or a release with a lower --version); release a version above %d",
			env.Module, env.Version, held, held)
	case env.Version == held:
		return false, nil
	}
	return true, nil
}

// accept records version as the newest release of module tried: a release
// is tried once, installed or refused by the agent.
func (r *releases) accept(module string, version uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.held[module] = max(r.held[module], version)
	b, err := json.Marshal(r.held)
	if err == nil {
		err = r.store.Put(keyReleases, b)
	}
	if err != nil {
		return fmt.Errorf("storing module release versions: %w", err)
	}
	return nil
}
