package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tern-iot/tern/runtime/store"
)

// A module version that fails this many calls in a row is rolled back to
// the version it replaced, if there is one.
const rollbackAfter = 3

// moduleOutcome counts a module's consecutive failed calls of one kind
// ("try", "run", "sense"): a sensor that still reads does not excuse a job
// that traps every time. It is called from the executor's goroutines.
func (a *Agent) moduleOutcome(module, export string, err error) {
	key := module + "/" + export
	a.mu.Lock()
	defer a.mu.Unlock()
	if err == nil || errors.Is(err, context.Canceled) {
		delete(a.strikes, key)
		return
	}
	a.strikes[key]++
	if a.strikes[key] >= rollbackAfter {
		a.lastFailure[module] = err.Error()
	}
}

// rollbacks rolls back every module that kept failing and has a previous
// version. It runs in the loop's goroutine, between plans, so no call is
// in flight into the module it replaces.
func (a *Agent) rollbacks(ctx context.Context) {
	type due struct{ name, why string }
	a.mu.Lock()
	var list []due
	for name, why := range a.lastFailure {
		list = append(list, due{name, why})
		delete(a.lastFailure, name)
		for _, export := range []string{"try", "run", "sense"} {
			delete(a.strikes, name+"/"+export)
		}
	}
	a.mu.Unlock()
	for _, d := range list {
		if err := a.rollback(ctx, d.name, d.why); err != nil {
			a.log.Warn("rollback not possible", "module", d.name, "err", err)
		}
	}
}

func (a *Agent) rollback(ctx context.Context, name, why string) error {
	prev, err := a.opts.Store.Get(modulePreviousKey(name))
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("module %s failed %d calls in a row but has no earlier version to go back to", name, rollbackAfter)
	}
	if err != nil {
		return err
	}
	cur, err := a.opts.Store.Get(moduleActiveKey(name))
	if err != nil {
		return err
	}
	wasm, err := a.opts.Store.Get(moduleCodeKey(name, string(prev)))
	if err != nil {
		return fmt.Errorf("previous code %s: %w", prev, err)
	}
	if codeHash(wasm) != string(prev) {
		return fmt.Errorf("previous code %s does not match its hash", prev)
	}
	if err := a.verify(name, wasm); err != nil {
		return err
	}
	old, _ := a.set.module(name)
	oldVersion := ""
	if old != nil {
		oldVersion = old.m.Manifest().Version
	}
	spec := a.specs[name]
	a.set.remove(ctx, name)
	mod, err := a.set.add(ctx, spec, wasm, string(prev))
	if err != nil {
		return fmt.Errorf("loading the previous version: %w", err)
	}
	mod.hash = string(prev)
	for _, kv := range [][2][]byte{
		{moduleBadKey(name, string(cur)), []byte(why)},
		{moduleActiveKey(name), prev},
	} {
		if err := a.opts.Store.Put(kv[0], kv[1]); err != nil {
			return err
		}
	}
	if err := a.opts.Store.Delete(modulePreviousKey(name)); err != nil {
		return err
	}
	a.mu.Lock()
	a.failures, a.nextTry = 0, time.Time{} // plan again at once
	a.mu.Unlock()
	a.modulesChanged()
	msg := fmt.Sprintf("version %s failed %d calls in a row (last: %s); rolled back to version %s", oldVersion, rollbackAfter, why, mod.m.Manifest().Version)
	a.log.Warn("module rolled back", "module", name, "from", oldVersion, "to", mod.m.Manifest().Version, "why", why)
	a.event(Event{Kind: EventModuleRolledBack, Module: name, Message: msg})
	return nil
}

// wasRolledBack reports whether the code hashed h was rolled back on this
// device.
func (a *Agent) wasRolledBack(name, h string) bool {
	_, err := a.opts.Store.Get(moduleBadKey(name, h))
	return err == nil
}
