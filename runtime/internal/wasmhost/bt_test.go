package wasmhost_test

import (
	"context"
	"testing"

	"github.com/tern-iot/tern/internal/wasmbuild"
	"github.com/tern-iot/tern/runtime/internal/wasmhost"
	"github.com/tern-iot/tern/sdk"
)

func BenchmarkTryX(b *testing.B) {
	ctx := context.Background()
	wasm, err := wasmbuild.Cached("github.com/tern-iot/tern/bench/planner/modules/counters")
	if err != nil {
		b.Fatal(err)
	}
	h, _ := wasmhost.New(ctx, wasmhost.Options{})
	m, err := h.Load(ctx, wasm, wasmhost.Grants{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	c := sdk.Call{Job: "plus_one", Path: "/counters/a", Params: map[string]string{"name": "a"}, Current: []byte("1"), Target: []byte("2")}
	for b.Loop() {
		if _, err := m.Try(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
}
