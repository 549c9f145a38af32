package wasmhost_test

import (
	"context"
	"testing"

	"github.com/tern-iot/tern/internal/wasmbuild"
	"github.com/tern-iot/tern/runtime/internal/wasmhost"
)

// BenchmarkInterpreterLoad: what a start costs where wazero has only its
// interpreter (32-bit ARM: armv6, armv7), whose compiled modules no cache
// keeps: decoding, validating and compiling the Go relay module to the
// interpreter's code, then its first instance and manifest. With
// GOARCH=arm GOARM=6 and -exec qemu-arm-static it runs as on a Pi Zero
// (docs/boards.md quotes it).
func BenchmarkInterpreterLoad(b *testing.B) {
	ctx := context.Background()
	relay, err := wasmbuild.Cached("github.com/tern-iot/tern/plugins/relay")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		h, err := wasmhost.New(ctx, wasmhost.Options{Interpreter: true, CacheDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := h.Load(ctx, relay, wasmhost.Grants{}, nil); err != nil {
			b.Fatal(err)
		}
		h.Close(ctx)
	}
}
