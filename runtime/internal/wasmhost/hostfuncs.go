package wasmhost

import (
	"context"
	"errors"
	"log/slog"
	"unicode/utf8"

	"github.com/tetratelabs/wazero/api"

	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/sdk"
)

// Bounds on strings a module passes in: resource names, log lines
// (longer log lines are cut).
const (
	maxName = 256
	maxLog  = 4096
)

// instantiateHostModule defines the "tern" import module of ABI.md.
func (h *Host) instantiateHostModule(ctx context.Context) error {
	_, err := h.rt.NewHostModuleBuilder("tern").
		NewFunctionBuilder().WithFunc(h.gpioWrite).Export("gpio_write").
		NewFunctionBuilder().WithFunc(h.gpioRead).Export("gpio_read").
		NewFunctionBuilder().WithFunc(h.log).Export("log").
		Instantiate(ctx)
	return err
}

func info(ctx context.Context) *callInfo {
	ci, _ := ctx.Value(callKey{}).(*callInfo)
	return ci
}

// pin resolves a GPIO line for a call, enforcing phase and grant.
func (h *Host) pin(ctx context.Context, mod api.Module, ptr, size uint32) (gpio.Pin, sdk.Errno) {
	ci := info(ctx)
	if ci == nil || ci.phase == PhasePlan {
		return nil, sdk.ErrnoPlanning
	}
	name, ok := readString(mod, ptr, size, maxName)
	if !ok {
		return nil, sdk.ErrnoBadArg
	}
	if !ci.module.grants.allowsGPIO(name) {
		h.opts.Logger.Warn("module asked for a GPIO line it was not granted", "module", ci.module.manifest.Name, "line", name)
		return nil, sdk.ErrnoNotGranted
	}
	if h.opts.GPIO == nil {
		return nil, sdk.ErrnoNoLine
	}
	p, err := h.opts.GPIO.Pin(name)
	if errors.Is(err, gpio.ErrUnknownLine) {
		return nil, sdk.ErrnoNoLine
	}
	if err != nil {
		return nil, sdk.ErrnoIO
	}
	return p, sdk.ErrnoOK
}

func (h *Host) gpioWrite(ctx context.Context, mod api.Module, ptr, size, level uint32) int32 {
	p, e := h.pin(ctx, mod, ptr, size)
	if e != sdk.ErrnoOK {
		return int32(e)
	}
	if level > 1 {
		return int32(sdk.ErrnoBadArg)
	}
	if err := p.Out(gpio.Level(level == 1)); err != nil {
		return int32(sdk.ErrnoIO)
	}
	return 0
}

func (h *Host) gpioRead(ctx context.Context, mod api.Module, ptr, size uint32) int32 {
	p, e := h.pin(ctx, mod, ptr, size)
	if e != sdk.ErrnoOK {
		return -int32(e)
	}
	l, err := p.Read()
	if err != nil {
		return -int32(sdk.ErrnoIO)
	}
	if l == gpio.High {
		return 1
	}
	return 0
}

func (h *Host) log(ctx context.Context, mod api.Module, level int32, ptr, size uint32) {
	msg, ok := readString(mod, ptr, min(size, maxLog), maxLog)
	if !ok {
		return
	}
	name := ""
	if ci := info(ctx); ci != nil {
		name = ci.module.manifest.Name
	}
	h.opts.Logger.Log(ctx, slog.Level(level), msg, "module", name)
}

func readString(mod api.Module, ptr, size, limit uint32) (string, bool) {
	if size > limit {
		return "", false
	}
	b, ok := mod.Memory().Read(ptr, size)
	if !ok || !utf8.Valid(b) {
		return "", false
	}
	return string(b), true
}
