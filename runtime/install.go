package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrModuleRefused means a module's new code was refused: it is not
// signed by a trusted key, does not load, is not a module this device is
// configured to run, or was rolled back here before. The version that ran
// before keeps running.
var ErrModuleRefused = errors.New("runtime: module refused")

// refusedError has the message of the error it wraps and matches
// ErrModuleRefused too.
type refusedError struct{ err error }

func (e refusedError) Error() string   { return e.err.Error() }
func (e refusedError) Unwrap() []error { return []error{ErrModuleRefused, e.err} }

// installRequest hands new code to the agent's loop.
type installRequest struct {
	name string
	wasm []byte
	done chan error // buffered: the loop never waits for the caller
}

// InstallModule makes wasm the code of the configured module name while
// the agent runs, as a release from the fleet does. The code goes through
// the lifecycle of code configured at start: its signature is verified
// against Options.Trust, it is compiled and loaded with the module's
// configured grants and config, and stored as the active version with the
// one it replaces kept as the version to roll back to, so that a new
// version that fails 3 calls in a row is rolled back (a
// module.rolled_back event). It is stored, so it runs again after a
// restart even when the configuration still names the old file.
//
// The swap happens in Run's loop between plans, so no call is in flight
// into the version it replaces; InstallModule waits for it, or for ctx.
// It returns nil once the code runs (at once if it already did), after a
// module.installed event; an error matching ErrModuleRefused, after a
// module.refused event saying why, when the code is refused and the old
// version keeps running; or another error when the store fails.
func (a *Agent) InstallModule(ctx context.Context, name string, wasm []byte) error {
	req := installRequest{name: name, wasm: wasm, done: make(chan error, 1)}
	select {
	case a.installs <- req:
	case <-ctx.Done():
		return fmt.Errorf("runtime: installing module %s: the agent's loop did not take it: %w", name, ctx.Err())
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("runtime: installing module %s: %w (it may still be installed)", name, ctx.Err())
	}
}

// ModuleRefused reports new code for module name that was refused before
// it reached the agent (a release that failed its checks on the way in),
// as a module.refused event.
func (a *Agent) ModuleRefused(name string, err error) {
	a.event(Event{Kind: EventModuleRefused, Module: name, Message: err.Error()})
}

// installNow swaps in new code; it runs in the loop's goroutine.
func (a *Agent) installNow(ctx context.Context, name string, wasm []byte) error {
	refuse := func(err error) error {
		a.log.Warn("module refused", "module", name, "err", err)
		a.ModuleRefused(name, err)
		return refusedError{err}
	}
	spec, ok := a.configuredSpec(name)
	if !ok {
		return refuse(fmt.Errorf("runtime: module %s is not configured on this device: add it to the modules of ternd.yaml, with its grants, to run it", name))
	}
	h := codeHash(wasm)
	if cur, err := a.opts.Store.Get(moduleActiveKey(name)); err == nil && string(cur) == h {
		if _, err := a.set.module(name); err == nil {
			return nil // runs already: a release delivered again
		}
	}
	if a.wasRolledBack(name, wasm) {
		return refuse(fmt.Errorf("runtime: module %s: this code (sha256 %.12s) was rolled back on this device after it kept failing; release a fixed version", name, h))
	}
	if err := a.verify(name, wasm); err != nil {
		return refuse(err)
	}
	mod, err := a.set.compile(ctx, name, wasm, spec.Grants, spec.Config)
	if err != nil {
		return refuse(err)
	}
	if err := a.install(name, wasm); err != nil {
		mod.m.Close(ctx)
		a.event(Event{Kind: EventModuleError, Module: name, Message: "new code not installed: " + err.Error()})
		return err
	}
	oldVersion := "none"
	if old, err := a.set.module(name); err == nil {
		oldVersion = old.m.Manifest().Version
	}
	a.set.remove(ctx, name)
	a.set.put(mod)
	a.specs[name] = spec
	a.mu.Lock()
	for _, export := range []string{"try", "run", "sense"} {
		delete(a.strikes, name+"/"+export)
	}
	delete(a.lastFailure, name)
	a.status.Modules = a.moduleVersions()
	a.failures, a.nextTry = 0, time.Time{} // plan again at once: the new code may reach what the old could not
	a.mu.Unlock()
	newVersion := mod.m.Manifest().Version
	a.log.Info("module installed", "module", name, "from", oldVersion, "to", newVersion, "sha256", h)
	a.event(Event{Kind: EventModuleInstalled, Module: name,
		Message: fmt.Sprintf("version %s (sha256 %.12s) installed, replacing version %s", newVersion, h, oldVersion)})
	return nil
}

// configuredSpec returns the configuration of module name.
func (a *Agent) configuredSpec(name string) (ModuleSpec, bool) {
	if s, ok := a.specs[name]; ok {
		return s, true
	}
	for _, s := range a.opts.Modules {
		if s.Name == name {
			return s, true
		}
	}
	return ModuleSpec{}, false
}
