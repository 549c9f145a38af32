package wasmhost_test

import (
	"context"
	"os"
	"testing"

	"github.com/tern-iot/tern/runtime/internal/wasmhost"
)

// FuzzLoad gives the host arbitrary bytes as a module: it loads them or
// refuses them with an error, and never panics. The seed is a minimal
// module written by hand in WebAssembly text (runtime/hostile_test.go's
// skeleton), so mutations explore near-valid modules.
func FuzzLoad(f *testing.F) {
	seed, err := os.ReadFile("testdata/minimal.wasm") // wasmtest.Module{}, assembled
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	ctx := context.Background()
	h, err := wasmhost.New(ctx, wasmhost.Options{})
	if err != nil {
		f.Fatal(err)
	}
	defer h.Close(ctx)
	f.Fuzz(func(t *testing.T, wasm []byte) {
		m, err := h.Load(ctx, wasm, wasmhost.Grants{}, nil)
		if err != nil {
			return
		}
		if m.Manifest().Validate() != nil {
			t.Fatal("loaded a module whose manifest does not validate")
		}
		m.Close(ctx)
	})
}
