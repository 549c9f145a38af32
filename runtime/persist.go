package runtime

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tern-iot/tern/runtime/layer"
	"github.com/tern-iot/tern/runtime/state"
	"github.com/tern-iot/tern/runtime/store"
)

// Keys in the store. They are a contract with earlier versions of ternd on
// the same board: never rename, only add.
var (
	keyTarget = []byte("target")
	keyState  = []byte("state")
)

func moduleActiveKey(name string) []byte   { return []byte("module/" + name + "/active") }
func modulePreviousKey(name string) []byte { return []byte("module/" + name + "/previous") }

// moduleConfiguredKey holds the hash of the configured code last installed
// from the configuration, so that a configuration that did not change does
// not undo a release at the next start.
func moduleConfiguredKey(name string) []byte { return []byte("module/" + name + "/configured") }

// moduleBadKey marks code that was rolled back, so it is not activated again.
// moduleAttemptKey holds the code hash of an install under way; found at
// a start, the install was cut short (by that code, or a power cut).
func moduleAttemptKey(name string) []byte { return []byte("module/" + name + "/attempt") }

// moduleRefusedKey holds the hash, a space and the reason of the last code
// refused for having been under way when the agent stopped.
func moduleRefusedKey(name string) []byte { return []byte("module/" + name + "/refused") }

func moduleBadKey(name, hash string) []byte { return []byte("module/" + name + "/bad/" + hash) }

func moduleCodeKey(name, hash string) []byte {
	return []byte("module/" + name + "/code/" + hash)
}

type storedTarget struct {
	Version uint64          `json:"version"`
	Target  json.RawMessage `json:"target"`
	// Layers are the target's conditional layers (layer.Marshal), kept
	// with it in one write: the device evaluates them offline too.
	Layers json.RawMessage `json:"layers,omitempty"`
}

// saveTarget stores target and version in one synced write, so a power cut
// leaves either the old pair or the new one.
func (a *Agent) saveTarget(version uint64, doc json.RawMessage, layers []layer.Layer) error {
	lb, err := layer.Marshal(layers)
	if err != nil {
		return fmt.Errorf("runtime: storing target: %w", err)
	}
	b, err := json.Marshal(storedTarget{Version: version, Target: doc, Layers: lb})
	if err != nil {
		return err
	}
	if err := a.opts.Store.Put(keyTarget, b); err != nil {
		return fmt.Errorf("runtime: storing target: %w", err)
	}
	return nil
}

func (a *Agent) loadTarget() error {
	b, err := a.opts.Store.Get(keyTarget)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("runtime: reading stored target: %w", err)
	}
	var st storedTarget
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("runtime: stored target is corrupt (%v): delete the data directory's target or push a new one", err)
	}
	v, err := state.Parse(st.Target)
	if err != nil {
		return fmt.Errorf("runtime: stored target is corrupt: %w", err)
	}
	ls, err := layer.Unmarshal(st.Layers)
	if err != nil {
		return fmt.Errorf("runtime: stored target's layers are corrupt: %w; push the target again", err)
	}
	a.version = st.Version
	a.setLayered(v, ls)
	a.log.Info("target restored", "version", st.Version, "layers", len(ls), "active", a.lay.active)
	return nil
}

func (a *Agent) loadState() error {
	b, err := a.opts.Store.Get(keyState)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("runtime: reading stored state: %w", err)
	}
	v, err := state.Parse(b)
	if err != nil {
		a.log.Warn("stored state is corrupt; sensing afresh", "err", err)
		return nil
	}
	if _, ok := v.(map[string]any); ok {
		a.current = v
	}
	return nil
}

// persistState writes the last state if it changed since the last write.
func (a *Agent) persistState() {
	a.mu.Lock()
	b := state.Canonical(a.current)
	changed := string(b) != string(a.savedState)
	a.mu.Unlock()
	if !changed {
		return
	}
	if err := a.opts.Store.Put(keyState, b); err != nil {
		a.log.Warn("persisting state failed", "err", err)
		return
	}
	a.mu.Lock()
	a.savedState = b
	a.mu.Unlock()
}
