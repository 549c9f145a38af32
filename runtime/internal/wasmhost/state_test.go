package wasmhost_test

import (
	"context"
	"testing"

	"github.com/tern-iot/tern/internal/wasmbuild"
	"github.com/tern-iot/tern/runtime/internal/wasmhost"
	"github.com/tern-iot/tern/runtime/state"
	"github.com/tern-iot/tern/sdk/abi"
)

type doc struct{ v any }

func (d doc) Get(p state.Pointer) (any, bool) { return state.Get(d.v, p) }

// state_read answers try and run calls made with a state, and refuses
// sensors (whose value must not depend on the state they report into) and
// calls made without one.
func TestStateReadPhases(t *testing.T) {
	ctx := context.Background()
	wasm, err := wasmbuild.Cached("github.com/tern-iot/tern/runtime/internal/wasmtest/readstate")
	if err != nil {
		t.Fatal(err)
	}
	h, err := wasmhost.New(ctx, wasmhost.Options{CacheDir: sharedCache})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	m, err := h.Load(ctx, wasm, wasmhost.Grants{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := doc{map[string]any{"src": map[string]any{"x": "hello"}}}
	withState := wasmhost.WithState(ctx, st)
	c := abi.Call{Job: "copy", Path: "/dst/x", Params: map[string]string{"name": "x"}}
	tr, err := m.Try(withState, c)
	if err != nil || !tr.OK || string(tr.Effect) != `"hello"` {
		t.Fatalf("try with a state: %+v, %v", tr, err)
	}
	if _, err := m.Try(ctx, c); err == nil || err.Error() != "sdk: reading /src/x: sdk: the state cannot be read in this call" {
		t.Fatalf("try without a state: %v", err)
	}
	if _, err := m.Call(withState, wasmhost.PhaseRun, "run", c); err != nil {
		t.Fatalf("run with a state: %v", err)
	}
	v, err := m.Call(withState, wasmhost.PhaseSense, "sense", abi.Call{Job: "peek", Path: "/peek"})
	if err != nil || string(v) != `"sdk: reading /src: sdk: the state cannot be read in this call"` {
		t.Fatalf("sensor: %s, %v", v, err)
	}
}
