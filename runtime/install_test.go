package runtime_test

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/internal/modfile"
	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/internal/testbound"
	"github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/runtime/internal/wasmtest"
	"github.com/tern-iot/tern/runtime/store"
	"github.com/tern-iot/tern/runtime/store/backend"
)

// fixManifest is the skeleton module at version v with its job on
// /fixed/:name: a fix that reaches what version 1 cannot.
func fixManifest(v string) string {
	return strings.NewReplacer(`"1.0.0"`, `"`+v+`"`, `/evil/:name`, `/fixed/:name`).Replace(wasmtest.Manifest)
}

// New code installed while the agent runs replaces the old, is used at
// once, survives a restart with the old file still configured, and is
// rolled back if it keeps failing; code that must not run is refused and
// the old code keeps running.
func TestInstallModule(t *testing.T) {
	dir := t.TempDir()
	trusted, err := signing.Generate(dir, "operator")
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := signing.ReadPrivate(filepath.Join(dir, "operator.key"))
	sign := func(wasm []byte) []byte {
		t.Helper()
		s, err := modfile.Sign(wasm, priv)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	v1 := sign(wasmtest.Assemble(t, wasmtest.Module{}.Text()))
	v2 := sign(wasmtest.Assemble(t, wasmtest.Module{Manifest: fixManifest("2.0.0")}.Text()))
	v3 := sign(wasmtest.Assemble(t, wasmtest.Module{Manifest: fixManifest("3.0.0"), Run: `(unreachable)`}.Text()))
	unsigned := wasmtest.Assemble(t, wasmtest.Module{Manifest: fixManifest("4.0.0")}.Text())
	misnamed := sign(wasmtest.Assemble(t, wasmtest.Module{Manifest: strings.Replace(fixManifest("5.0.0"), `"evil"`, `"other"`, 1)}.Text()))

	data := filepath.Join(dir, "store")
	lines := sim.NewGPIO("GPIO17")
	start := func() (*runtime.Agent, *recorder, func()) {
		st, err := backend.Open(data)
		if err != nil {
			t.Fatal(err)
		}
		rep := &recorder{}
		a, stop := runAgent(t, runtime.Options{
			Store: st, GPIO: lines, CacheDir: sharedCache, Reporter: rep, Logger: testLogger(t),
			RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond, Trust: signing.NewTrust(trusted),
			Modules: []runtime.ModuleSpec{{Name: "evil", Wasm: v1}},
		})
		return a, rep, stop
	}
	a, rep, stop := start()
	defer func() { stop() }()
	ctx := t.Context()
	if err := a.SetTarget(1, json.RawMessage(`{"fixed":{"a":true}}`)); err != nil {
		t.Fatal(err)
	}
	testbound.WaitFor(t, "version 1 failing to plan", func() bool { _, ok := rep.find(runtime.EventPlanFailed, ""); return ok })

	// The fix arrives and reaches the target version 1 could not.
	if err := a.InstallModule(ctx, "evil", v2); err != nil {
		t.Fatal(err)
	}
	if v := a.Status().Modules["evil"]; v != "2.0.0" {
		t.Fatalf("after InstallModule running %q, want 2.0.0", v)
	}
	testbound.WaitFor(t, "a module.installed event", func() bool {
		_, ok := rep.find(runtime.EventModuleInstalled, "version 2.0.0 (sha256 ")
		_, ok2 := rep.find(runtime.EventModuleInstalled, "replacing version 1.0.0")
		return ok && ok2
	})
	testbound.WaitFor(t, "convergence with the fix", func() bool { return a.Status().Converged })
	if err := a.InstallModule(ctx, "evil", v2); err != nil {
		t.Fatalf("the code that runs, again: %v", err)
	}

	// Code that must not run is refused, with an event; 2.0.0 keeps running.
	for name, tc := range map[string]struct {
		module string
		wasm   []byte
		want   string
	}{
		"unsigned":       {"evil", unsigned, "not signed"},
		"misnamed":       {"evil", misnamed, `calls itself "other"`},
		"not configured": {"ghost", v2, "not configured on this device"},
		"not wasm":       {"evil", []byte("\x00asm garbage"), "module evil"},
	} {
		err := a.InstallModule(ctx, tc.module, tc.wasm)
		if !errors.Is(err, runtime.ErrModuleRefused) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want ErrModuleRefused saying %q", name, err, tc.want)
		}
		testbound.WaitFor(t, name+": a module.refused event", func() bool { _, ok := rep.find(runtime.EventModuleRefused, tc.want); return ok })
	}
	if v := a.Status().Modules["evil"]; v != "2.0.0" {
		t.Fatalf("after refusals running %q, want 2.0.0", v)
	}

	// A release that traps on every run is rolled back to 2.0.0, and not
	// taken again.
	if err := a.InstallModule(ctx, "evil", v3); err != nil {
		t.Fatal(err)
	}
	if err := a.SetTarget(2, json.RawMessage(`{"fixed":{"b":true}}`)); err != nil {
		t.Fatal(err)
	}
	testbound.WaitFor(t, "the rollback of 3.0.0", func() bool {
		_, ok := rep.find(runtime.EventModuleRolledBack, "version 3.0.0 failed 3 calls in a row")
		return ok
	})
	testbound.WaitFor(t, "convergence on 2.0.0", func() bool { return a.Status().Converged && a.Status().Modules["evil"] == "2.0.0" })
	if err := a.InstallModule(ctx, "evil", v3); !errors.Is(err, runtime.ErrModuleRefused) || !strings.Contains(err.Error(), "was rolled back on this device") {
		t.Errorf("rolled-back code offered again: %v", err)
	}

	// Restarted with version 1 still configured: the installed 2.0.0 runs.
	stop()
	a, _, stop = start()
	if v := a.Status().Modules["evil"]; v != "2.0.0" {
		t.Fatalf("after a restart running %q, want the installed 2.0.0", v)
	}
}

// codeReads counts the reads of modules' stored code.
type codeReads struct {
	store.Store
	n atomic.Int64
}

func (s *codeReads) Get(key []byte) ([]byte, error) {
	if strings.Contains(string(key), "/code/") {
		s.n.Add(1)
	}
	return s.Store.Get(key)
}

// A start with the configured code already installed and active runs the
// file's bytes (the same, by their hash) without reading the stored copy:
// it would cost a copy of the module in memory and the pages of the
// store's value log. Without the file, the stored copy runs. The agent
// leaves the caller's Options as they were.
func TestStartReadsNoStoredCopyOfTheConfiguredCode(t *testing.T) {
	data := filepath.Join(t.TempDir(), "store")
	wasm := wasmtest.Assemble(t, wasmtest.Module{}.Text())
	start := func(code []byte) (*runtime.Agent, *codeReads, func()) {
		st, err := backend.Open(data)
		if err != nil {
			t.Fatal(err)
		}
		reads := &codeReads{Store: st}
		opts := runtime.Options{
			Store: reads, CacheDir: sharedCache, Logger: testLogger(t),
			Modules: []runtime.ModuleSpec{{Name: "evil", Wasm: code}},
		}
		a, stop := runAgent(t, opts)
		if code != nil && opts.Modules[0].Wasm == nil {
			t.Fatal("runtime.New changed the caller's Options.Modules")
		}
		if v := a.Status().Modules["evil"]; v != "1.0.0" {
			t.Fatalf("running %q, want 1.0.0", v)
		}
		return a, reads, stop
	}
	_, _, stop := start(wasm) // installs it
	stop()
	_, reads, stop := start(wasm)
	if n := reads.n.Load(); n != 0 {
		t.Fatalf("a start with the configured code installed read stored code %d times, want 0", n)
	}
	stop()
	_, reads, stop = start(nil) // the file is gone
	if n := reads.n.Load(); n != 1 {
		t.Fatalf("a start without the configured file read stored code %d times, want 1", n)
	}
	stop()
}
