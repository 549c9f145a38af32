package wasmhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/tetratelabs/wazero/api"

	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/hal/i2c"
	"github.com/tern-iot/tern/hal/serial"
	"github.com/tern-iot/tern/sdk/abi"
)

// Bounds on strings a module passes in: resource names, log lines
// (longer log lines are cut).
const (
	maxName = 256
	maxLog  = 4096
)

// instantiateHostModule defines the "tern" import module of ABI.md.
func (h *Host) instantiateHostModule(ctx context.Context) error {
	b := h.rt.NewHostModuleBuilder("tern")
	for _, f := range h.hostFuncs() {
		b.NewFunctionBuilder().WithGoModuleFunction(f.fn, i32s(f.params), i32s(f.results)).Export(f.name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

// hostFunc is one function of the "tern" module: its name, its signature
// as ABI.md gives it (every parameter and result an i32), and an adapter
// from wazero's stack to the method that does the work.
//
// The functions are typed by hand rather than with WithFunc, which calls
// them through reflection: that way a gpio_write from a module cost 1.5–2
// µs, 18 times the sim line's own share of it (BenchmarkGuestToHost).
type hostFunc struct {
	name            string
	params, results int
	fn              api.GoModuleFunc
}

func (h *Host) hostFuncs() []hostFunc {
	u32, i32 := api.DecodeU32, api.EncodeI32
	return []hostFunc{
		{"gpio_write", 3, 1, func(ctx context.Context, mod api.Module, s []uint64) {
			s[0] = i32(h.gpioWrite(ctx, mod, u32(s[0]), u32(s[1]), u32(s[2])))
		}},
		{"gpio_read", 2, 1, func(ctx context.Context, mod api.Module, s []uint64) {
			s[0] = i32(h.gpioRead(ctx, mod, u32(s[0]), u32(s[1])))
		}},
		{"gpio_in", 3, 1, func(ctx context.Context, mod api.Module, s []uint64) {
			s[0] = i32(h.gpioIn(ctx, mod, u32(s[0]), u32(s[1]), u32(s[2])))
		}},
		{"gpio_wait_edge", 3, 1, func(ctx context.Context, mod api.Module, s []uint64) {
			s[0] = i32(h.gpioWaitEdge(ctx, mod, u32(s[0]), u32(s[1]), u32(s[2])))
		}},
		{"log", 3, 0, func(ctx context.Context, mod api.Module, s []uint64) {
			h.log(ctx, mod, api.DecodeI32(s[0]), u32(s[1]), u32(s[2]))
		}},
		{"i2c_tx", 7, 1, func(ctx context.Context, mod api.Module, s []uint64) {
			s[0] = i32(h.i2cTx(ctx, mod, u32(s[0]), u32(s[1]), u32(s[2]), u32(s[3]), u32(s[4]), u32(s[5]), u32(s[6])))
		}},
		{"serial_open", 3, 1, func(ctx context.Context, mod api.Module, s []uint64) {
			s[0] = i32(h.serialOpen(ctx, mod, u32(s[0]), u32(s[1]), u32(s[2])))
		}},
		{"serial_write", 3, 1, func(ctx context.Context, mod api.Module, s []uint64) {
			s[0] = i32(h.serialWrite(ctx, mod, u32(s[0]), u32(s[1]), u32(s[2])))
		}},
		{"serial_read", 4, 1, func(ctx context.Context, mod api.Module, s []uint64) {
			s[0] = i32(h.serialRead(ctx, mod, u32(s[0]), u32(s[1]), u32(s[2]), u32(s[3])))
		}},
		{"serial_close", 1, 1, func(ctx context.Context, _ api.Module, s []uint64) {
			s[0] = i32(h.serialClose(ctx, u32(s[0])))
		}},
		{"state_read", 4, 1, func(ctx context.Context, mod api.Module, s []uint64) {
			s[0] = i32(h.stateRead(ctx, mod, u32(s[0]), u32(s[1]), u32(s[2]), u32(s[3])))
		}},
	}
}

// i32s is n i32 value types.
func i32s(n int) []api.ValueType {
	t := make([]api.ValueType, n)
	for i := range t {
		t[i] = api.ValueTypeI32
	}
	return t
}

func info(ctx context.Context) *callInfo {
	ci, _ := ctx.Value(callKey{}).(*callInfo)
	return ci
}

// pin resolves a GPIO line for a call, enforcing phase and grant.
func (h *Host) pin(ctx context.Context, mod api.Module, ptr, size uint32) (gpio.Pin, abi.Errno) {
	p, _, e := h.grantedPin(info(ctx), mod, ptr, size)
	return p, e
}

// grantedPin is pin, with the line's grant. The module's bytes naming the
// line are copied only to report a refusal.
func (h *Host) grantedPin(ci *callInfo, mod api.Module, ptr, size uint32) (gpio.Pin, *grantedLine, abi.Errno) {
	if ci == nil {
		return nil, nil, abi.ErrnoPlanning
	}
	b, ok := readName(mod, ptr, size, maxName)
	if !ok {
		return nil, nil, abi.ErrnoBadArg
	}
	if ci.phase == PhasePlan {
		ci.module.refuse(gpioPlanning, string(b))
		return nil, nil, abi.ErrnoPlanning
	}
	if !ci.module.requests.gpio {
		ci.module.refuse(gpioNotRequested, string(b))
		return nil, nil, abi.ErrnoNotGranted
	}
	line := ci.module.watch.granted(b)
	if line == nil {
		ci.module.refuse(gpioNotGranted, string(b))
		return nil, nil, abi.ErrnoNotGranted
	}
	if h.opts.GPIO == nil {
		return nil, nil, abi.ErrnoNoLine
	}
	if r := line.pin.Load(); r != nil {
		return r.Pin, line, abi.ErrnoOK
	}
	p, err := h.opts.GPIO.Pin(line.name)
	if errors.Is(err, gpio.ErrUnknownLine) {
		return nil, nil, abi.ErrnoNoLine
	}
	if err != nil {
		return nil, nil, abi.ErrnoIO
	}
	line.pin.Store(&pinRef{p})
	return p, line, abi.ErrnoOK
}

// gpioWrite drives a line, within the write rate its grant allows
// (ratelimit.go); past it the write fails with ErrnoRate.
func (h *Host) gpioWrite(ctx context.Context, mod api.Module, ptr, size, level uint32) int32 {
	ci := info(ctx)
	p, line, e := h.grantedPin(ci, mod, ptr, size)
	if e != abi.ErrnoOK {
		return int32(e)
	}
	if level > 1 {
		return int32(abi.ErrnoBadArg)
	}
	if !ci.module.watch.allowWrite(line, monotonicNow()) {
		ci.module.refuse(gpioRate, line.name)
		return int32(abi.ErrnoRate)
	}
	if err := p.Out(gpio.Level(level == 1)); err != nil {
		return int32(abi.ErrnoIO)
	}
	return 0
}

// gpioIn makes a line an input with a pull: 0 none, 1 down, 2 up.
func (h *Host) gpioIn(ctx context.Context, mod api.Module, ptr, size, pull uint32) int32 {
	p, e := h.pin(ctx, mod, ptr, size)
	if e != abi.ErrnoOK {
		return int32(e)
	}
	if pull > 2 {
		return int32(abi.ErrnoBadArg)
	}
	if err := p.In(gpio.Pull(pull)); err != nil {
		return int32(abi.ErrnoIO)
	}
	return 0
}

// gpioWaitEdge waits for the input's level to change: 1 it did, 0 not
// within timeout_ms (never past the call's deadline), or -errno.
func (h *Host) gpioWaitEdge(ctx context.Context, mod api.Module, ptr, size, timeoutMS uint32) int32 {
	p, e := h.pin(ctx, mod, ptr, size)
	if e != abi.ErrnoOK {
		return -int32(e)
	}
	timeout := time.Duration(timeoutMS) * time.Millisecond
	if d, ok := ctx.Deadline(); ok {
		timeout = max(0, min(timeout, time.Until(d)))
	}
	got, err := p.WaitForEdge(timeout)
	if err != nil {
		return -int32(abi.ErrnoIO)
	}
	if got {
		return 1
	}
	return 0
}

func (h *Host) gpioRead(ctx context.Context, mod api.Module, ptr, size uint32) int32 {
	p, e := h.pin(ctx, mod, ptr, size)
	if e != abi.ErrnoOK {
		return -int32(e)
	}
	l, err := p.Read()
	if err != nil {
		return -int32(abi.ErrnoIO)
	}
	if l == gpio.High {
		return 1
	}
	return 0
}

// maxI2C bounds one I2C transaction's bytes each way.
const maxI2C = 4096

func (h *Host) i2cTx(ctx context.Context, mod api.Module, busPtr, busLen, addr, wPtr, wLen, rPtr, rLen uint32) int32 {
	ci := info(ctx)
	if ci == nil {
		return int32(abi.ErrnoPlanning)
	}
	bus, ok := readString(mod, busPtr, busLen, maxName)
	if !ok || addr > 0x3ff || wLen > maxI2C || rLen > maxI2C {
		return int32(abi.ErrnoBadArg)
	}
	if ci.phase == PhasePlan {
		ci.module.refuse(i2cPlanning, fmt.Sprintf("%s:%#x", bus, addr))
		return int32(abi.ErrnoPlanning)
	}
	if !ci.module.requests.i2c {
		ci.module.refuse(i2cNotRequested, fmt.Sprintf("%s:%#x", bus, addr))
		return int32(abi.ErrnoNotGranted)
	}
	if !allowsI2C(ci.module.grants, bus, uint16(addr)) {
		ci.module.refuse(i2cNotGranted, fmt.Sprintf("%s:%#x", bus, addr))
		return int32(abi.ErrnoNotGranted)
	}
	if h.opts.I2C == nil {
		return int32(abi.ErrnoNoLine)
	}
	b, err := h.opts.I2C.Bus(bus)
	if err != nil {
		return int32(abi.ErrnoNoLine)
	}
	w, ok := mod.Memory().Read(wPtr, wLen)
	if !ok {
		return int32(abi.ErrnoBadArg)
	}
	if _, ok := mod.Memory().Read(rPtr, rLen); !ok {
		return int32(abi.ErrnoBadArg)
	}
	r := make([]byte, rLen)
	if err := b.Tx(uint16(addr), append([]byte(nil), w...), r); err != nil {
		if errors.Is(err, i2c.ErrNoDevice) {
			return int32(abi.ErrnoNoDevice)
		}
		return int32(abi.ErrnoIO)
	}
	mod.Memory().Write(rPtr, r)
	return 0
}

// maxSerial bounds one serial read or write.
const maxSerial = 64 << 10

// serialOpen opens a granted port for the rest of the call and returns a
// handle (> 0), or -errno.
func (h *Host) serialOpen(ctx context.Context, mod api.Module, namePtr, nameLen, baud uint32) int32 {
	ci := info(ctx)
	if ci == nil {
		return -int32(abi.ErrnoPlanning)
	}
	name, ok := readString(mod, namePtr, nameLen, maxName)
	if !ok || baud == 0 || baud > 4_000_000 {
		return -int32(abi.ErrnoBadArg)
	}
	if ci.phase == PhasePlan {
		ci.module.refuse(serialPlanning, name)
		return -int32(abi.ErrnoPlanning)
	}
	if !ci.module.requests.serial {
		ci.module.refuse(serialNotRequested, name)
		return -int32(abi.ErrnoNotGranted)
	}
	if !allowsSerial(ci.module.grants, name, int(baud)) {
		ci.module.refuse(serialNotGranted, fmt.Sprintf("%s at %d baud", name, baud))
		return -int32(abi.ErrnoNotGranted)
	}
	if h.opts.Serial == nil {
		return -int32(abi.ErrnoNoLine)
	}
	p, err := h.opts.Serial.Open(name, serial.Mode{Baud: int(baud)})
	switch {
	case errors.Is(err, serial.ErrUnknownPort):
		return -int32(abi.ErrnoNoLine)
	case err != nil:
		return -int32(abi.ErrnoIO)
	}
	ci.ports = append(ci.ports, p)
	return int32(len(ci.ports))
}

func (ci *callInfo) port(handle uint32) serial.Port {
	if handle == 0 || int(handle) > len(ci.ports) {
		return nil
	}
	return ci.ports[handle-1]
}

func (ci *callInfo) closePorts() {
	for _, p := range ci.ports {
		if p != nil {
			p.Close()
		}
	}
	ci.ports = nil
}

func (h *Host) serialWrite(ctx context.Context, mod api.Module, handle, ptr, size uint32) int32 {
	ci := info(ctx)
	if ci == nil || ci.port(handle) == nil || size > maxSerial {
		return -int32(abi.ErrnoBadArg)
	}
	b, ok := mod.Memory().Read(ptr, size)
	if !ok {
		return -int32(abi.ErrnoBadArg)
	}
	n, err := ci.port(handle).Write(append([]byte(nil), b...))
	if err != nil {
		return -int32(abi.ErrnoIO)
	}
	return int32(n)
}

func (h *Host) serialRead(ctx context.Context, mod api.Module, handle, ptr, size, timeoutMS uint32) int32 {
	ci := info(ctx)
	if ci == nil || ci.port(handle) == nil || size > maxSerial {
		return -int32(abi.ErrnoBadArg)
	}
	if _, ok := mod.Memory().Read(ptr, size); !ok {
		return -int32(abi.ErrnoBadArg)
	}
	timeout := time.Duration(timeoutMS) * time.Millisecond
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d)) // never past the call's deadline
	}
	buf := make([]byte, size)
	n, err := ci.port(handle).Read(buf, timeout)
	if err != nil {
		return -int32(abi.ErrnoIO)
	}
	mod.Memory().Write(ptr, buf[:n])
	return int32(n)
}

func (h *Host) serialClose(ctx context.Context, handle uint32) int32 {
	ci := info(ctx)
	if ci == nil || ci.port(handle) == nil {
		return int32(abi.ErrnoBadArg)
	}
	ci.ports[handle-1].Close()
	ci.ports[handle-1] = nil
	return 0
}

func (h *Host) log(ctx context.Context, mod api.Module, level int32, ptr, size uint32) {
	ci := info(ctx)
	if ci == nil {
		return
	}
	if !ci.module.watch.allowLog(time.Now(), h.opts.LogRate) {
		ci.module.refuse(logFlood, "")
		return
	}
	msg, ok := readString(mod, ptr, min(size, maxLog), maxLog)
	if !ok {
		return
	}
	h.opts.Logger.Log(ctx, slog.Level(level), msg, "module", ci.module.manifest.Name)
}

func readString(mod api.Module, ptr, size, limit uint32) (string, bool) {
	b, ok := readName(mod, ptr, size, limit)
	return string(b), ok
}

// readName is readString without the copy: the bytes are the module's
// memory, to read before the module runs again.
func readName(mod api.Module, ptr, size, limit uint32) ([]byte, bool) {
	if size > limit {
		return nil, false
	}
	b, ok := mod.Memory().Read(ptr, size)
	if !ok || !utf8.Valid(b) {
		return nil, false
	}
	return b, true
}
