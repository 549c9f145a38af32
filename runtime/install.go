package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tern-iot/tern/runtime/internal/wasmhost"
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

// installRequest hands new code, compiled, to the agent's loop.
type installRequest struct {
	name string
	hash string
	mod  *module
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
// Compiling happens on the caller's goroutine (in a child process, with
// Options.CompileCommand): the agent keeps sensing, planning and running
// meanwhile. The swap happens in Run's loop between plans, so no call is
// in flight into the version it replaces; InstallModule waits for it, or
// for ctx. The attempt is recorded before compiling: if the agent dies
// during it, the code is refused at the next start.
//
// It returns nil once the code runs (at once if it already did), after a
// module.installed event; an error matching ErrModuleRefused, after a
// module.refused event saying why, when the code is refused and the old
// version keeps running; or another error when the store fails.
func (a *Agent) InstallModule(ctx context.Context, name string, wasm []byte) error {
	refuse := func(err error) error {
		a.log.Warn("module refused", "module", name, "err", err)
		a.ModuleRefused(name, err)
		return refusedError{err}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("runtime: installing module %s: %w", name, err)
	}
	spec, ok := a.configuredSpec(name)
	if !ok {
		return refuse(fmt.Errorf("runtime: module %s is not configured on this device: add it to the modules of ternd.yaml, with its grants, to run it", name))
	}
	h := codeHash(wasm)
	if a.running(name) == h {
		return nil // runs already: a release delivered again
	}
	if why, ok := a.refusedBefore(name, h); ok {
		return refuse(fmt.Errorf("runtime: module %s: this code (sha256 %.12s) was refused before: %s", name, h, why))
	}
	if a.wasRolledBack(name, h) {
		return refuse(fmt.Errorf("runtime: module %s: this code (sha256 %.12s) was rolled back on this device after it kept failing; release a fixed version", name, h))
	}
	if err := a.verify(name, wasm); err != nil {
		return refuse(err)
	}
	if err := a.opts.Store.Put(moduleAttemptKey(name), []byte(h)); err != nil {
		return fmt.Errorf("runtime: installing module %s: %w", name, err)
	}
	defer a.opts.Store.Delete(moduleAttemptKey(name))
	spec.withoutCode()
	mod, err := a.set.compile(ctx, spec, wasm, h)
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("runtime: installing module %s: stopped while compiling: %w", name, ctx.Err())
	}
	if err != nil {
		return refuse(err)
	}
	mod.hash = h
	if err := a.storeCode(name, h, wasm); err != nil {
		mod.m.Close(ctx)
		a.event(Event{Kind: EventModuleError, Module: name, Message: "new code not installed: " + err.Error()})
		return err
	}
	req := installRequest{name: name, hash: h, mod: mod, done: make(chan error, 1)}
	select {
	case a.installs <- req:
	case <-ctx.Done():
		mod.m.Close(context.WithoutCancel(ctx))
		return fmt.Errorf("runtime: installing module %s: the agent's loop did not take it: %w", name, ctx.Err())
	}
	select {
	case err := <-req.done:
		if errors.Is(err, ErrModuleRefused) {
			a.log.Warn("module refused", "module", name, "err", err)
		}
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

// refusedBefore reports whether the code hashed h was refused at a start
// for having been under way when the agent stopped, and why.
func (a *Agent) refusedBefore(name, h string) (string, bool) {
	b, err := a.opts.Store.Get(moduleRefusedKey(name))
	if err != nil {
		return "", false
	}
	hash, why, _ := strings.Cut(string(b), " ")
	return why, hash == h
}

// interruptedInstalls refuses, at a start, the code whose install was under
// way when the agent stopped: it may be what stopped it.
func (a *Agent) interruptedInstalls() {
	for _, spec := range a.opts.Modules {
		h, err := a.opts.Store.Get(moduleAttemptKey(spec.Name))
		if err != nil {
			continue
		}
		why := "its install was under way when ternd stopped (the code may have brought it down, or the power went); it is not tried again: release a fixed version, or the same code as a new version if the power went"
		if err := a.opts.Store.Put(moduleRefusedKey(spec.Name), []byte(string(h)+" "+why)); err != nil {
			a.log.Error("module refusal not stored", "module", spec.Name, "err", err)
			continue
		}
		a.opts.Store.Delete(moduleAttemptKey(spec.Name))
		a.ModuleRefused(spec.Name, fmt.Errorf("runtime: module %s: code sha256 %.12s refused: %s", spec.Name, h, why))
	}
}

// RunningCode returns the SHA-256 (hex) of the code of module name that
// runs, "" if none: after InstallModule, a rollback shows as other code.
func (a *Agent) RunningCode(name string) string { return a.running(name) }

// running returns the code hash of the version of module name that runs
// ("" if none).
func (a *Agent) running(name string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.codes[name]
}

// installNow swaps in new, compiled code; it runs in the loop's goroutine.
func (a *Agent) installNow(ctx context.Context, req installRequest) error {
	name, mod, h := req.name, req.mod, req.hash
	if a.running(name) == h {
		mod.m.Close(ctx)
		return nil
	}
	if err := a.set.checkSensors(mod); err != nil {
		mod.m.Close(ctx)
		a.ModuleRefused(name, err)
		return refusedError{err}
	}
	if err := a.activate(name, h); err != nil {
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
	a.specs[name] = mod.spec
	a.mu.Lock()
	for _, export := range []string{"try", "run", "sense"} {
		delete(a.strikes, name+"/"+export)
	}
	delete(a.lastFailure, name)
	a.failures, a.nextTry = 0, time.Time{} // plan again at once: the new code may reach what the old could not
	a.mu.Unlock()
	a.modulesChanged()
	newVersion := mod.m.Manifest().Version
	a.log.Info("module installed", "module", name, "from", oldVersion, "to", newVersion, "sha256", h)
	a.event(Event{Kind: EventModuleInstalled, Module: name,
		Message: fmt.Sprintf("version %s (sha256 %.12s) installed, replacing version %s", newVersion, h, oldVersion)})
	return nil
}

// configuredSpec returns the configuration of module name. It reads only
// Options, so any goroutine may call it.
func (a *Agent) configuredSpec(name string) (ModuleSpec, bool) {
	for _, s := range a.opts.Modules {
		if s.Name == name {
			return s, true
		}
	}
	return ModuleSpec{}, false
}

// ServeCompile is the child process of Options.CompileCommand: it reads a
// module on in, compiles it into the cache its arguments name under the
// limits they set, and returns the process's exit code (0 compiled, 1
// refused with the reason on stderr, 2 bad arguments). ternd runs it as
// "ternd compile-module".
func ServeCompile(args []string, in io.Reader, stderr io.Writer) int {
	return wasmhost.ServeCompile(args, in, stderr)
}
