package wasmhost

import (
	"context"

	"github.com/tetratelabs/wazero/api"

	"github.com/tern-iot/tern/runtime/state"
	"github.com/tern-iot/tern/sdk/abi"
)

// StateReader is the state a module's job reads through state_read: while
// planning, the state the search has reached; while running, the device's.
type StateReader interface {
	Get(p state.Pointer) (any, bool)
}

type stateKey struct{}

// WithState lets the try and run calls made with ctx read r through
// state_read (ABI.md, "Reading the state"). Without it, state_read fails
// with ErrnoNoState, as it always does in sensors and configure.
func WithState(ctx context.Context, r StateReader) context.Context {
	return context.WithValue(ctx, stateKey{}, r)
}

func stateFrom(ctx context.Context, phase Phase) StateReader {
	if phase == PhaseSense {
		return nil
	}
	r, _ := ctx.Value(stateKey{}).(StateReader)
	return r
}

// Bounds on state_read: the pointer's length, and the encoded value's (the
// state is bounded well below it: targets and sensor values are).
const (
	maxReadPath  = 4096
	maxReadValue = 8 << 20
)

// stateRead answers state_read(path_ptr, path_len, buf_ptr, buf_cap): the
// size of the wire form of the state's value at path, written at buf_ptr
// when it fits in buf_cap; or -errno. A module whose buffer was too small
// calls again with one as large as the size; the encoded value is kept
// for that.
func (h *Host) stateRead(ctx context.Context, mod api.Module, pathPtr, pathLen, bufPtr, bufCap uint32) int32 {
	ci := info(ctx)
	if ci == nil || ci.state == nil {
		return -int32(abi.ErrnoNoState)
	}
	path, ok := readString(mod, pathPtr, pathLen, maxReadPath)
	if !ok {
		return -int32(abi.ErrnoBadArg)
	}
	if ci.read.b == nil || ci.read.path != path {
		p, err := state.ParsePointer(path)
		if err != nil {
			return -int32(abi.ErrnoBadArg)
		}
		v, present := ci.state.Get(p)
		b, err := abi.AppendState(nil, v, present)
		if err != nil || len(b) > maxReadValue {
			return -int32(abi.ErrnoBadArg)
		}
		ci.read.path, ci.read.b = path, b
	}
	b := ci.read.b
	if uint32(len(b)) > bufCap {
		return int32(len(b))
	}
	if !mod.Memory().Write(bufPtr, b) {
		return -int32(abi.ErrnoBadArg)
	}
	return int32(len(b))
}
