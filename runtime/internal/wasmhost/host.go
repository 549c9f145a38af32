package wasmhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/tern-iot/tern/hal/gpio"
	"github.com/tern-iot/tern/hal/i2c"
	"github.com/tern-iot/tern/hal/serial"
	"github.com/tern-iot/tern/internal/modfile"
	"github.com/tern-iot/tern/sdk"
)

// Phase is what a call is for; it decides what host functions allow.
type Phase int

const (
	PhasePlan  Phase = iota // condition, effect, describe: no hardware
	PhaseRun                // run: granted hardware
	PhaseSense              // sense: granted hardware
)

func (p Phase) String() string {
	return [...]string{"plan", "run", "sense"}[p]
}

// Options configure a Host. The zero value of each field means its default.
type Options struct {
	// CacheDir holds compiled modules across restarts; empty disables it.
	CacheDir string
	// GPIO is the board's GPIO; nil means the board has none.
	GPIO gpio.Lookup
	// I2C is the board's I2C buses; nil means none.
	I2C i2c.Lookup
	// Serial opens the board's serial ports; nil means none.
	Serial serial.Opener
	// Logger receives module logs; nil discards them.
	Logger *slog.Logger
	// MemoryLimitPages caps each instance's linear memory, in 64 KiB pages.
	// Default 2048 (128 MiB).
	MemoryLimitPages uint32
	// CallTimeout bounds one call into a module. Default 10 s.
	CallTimeout time.Duration
	// MaxOutput caps the bytes a module may return from one call. Default 1 MiB.
	MaxOutput uint32
	// Instances is the pool size per module. Default 2.
	Instances int
	// LogRate bounds the lines per second a module may log (a burst of
	// twice as many is allowed); the rest are dropped and reported through
	// Notify. Default 100.
	LogRate int
	// Interpreter forces wazero's interpreter where the compiler is
	// available (benchmarks compare them; 32-bit ARM has only the
	// interpreter).
	Interpreter bool
	// Notify hears about a module's misbehaviour that is not the failure
	// of a call (a log flood); nil: only logged.
	Notify func(module, problem string)
}

func (o Options) withDefaults() Options {
	if o.MemoryLimitPages == 0 {
		o.MemoryLimitPages = 2048
	}
	if o.CallTimeout == 0 {
		o.CallTimeout = 10 * time.Second
	}
	if o.MaxOutput == 0 {
		o.MaxOutput = 1 << 20
	}
	if o.Instances == 0 {
		o.Instances = 2
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.LogRate == 0 {
		o.LogRate = 100
	}
	if o.Notify == nil {
		o.Notify = func(string, string) {}
	}
	return o
}

// Host loads and runs modules.
type Host struct {
	opts  Options
	rt    wazero.Runtime
	cache wazero.CompilationCache

	mu      sync.Mutex
	refused map[string]time.Time // refusals reported, and when
}

// ErrCall wraps every failure of a call into a module: a trap, a deadline,
// a malformed result. The module misbehaved; the host is fine.
var ErrCall = errors.New("wasmhost: module call failed")

// New creates a host. Close it to release the runtime and the cache.
func New(ctx context.Context, opts Options) (*Host, error) {
	opts = opts.withDefaults()
	cfg := wazero.NewRuntimeConfig()
	if opts.Interpreter {
		cfg = wazero.NewRuntimeConfigInterpreter()
	}
	cfg = cfg.
		WithMemoryLimitPages(opts.MemoryLimitPages).
		// A call past its deadline must stop even in a tight loop. wazero
		// then checks the context in loops, which costs speed; see RATIONALE.md.
		WithCloseOnContextDone(true)
	h := &Host{opts: opts, refused: map[string]time.Time{}}
	if opts.CacheDir != "" {
		if err := os.MkdirAll(opts.CacheDir, 0o755); err != nil {
			return nil, fmt.Errorf("wasmhost: compilation cache: %w", err)
		}
		c, err := wazero.NewCompilationCacheWithDir(opts.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("wasmhost: compilation cache %s: %w", opts.CacheDir, err)
		}
		h.cache = c
		cfg = cfg.WithCompilationCache(c)
	}
	h.rt = wazero.NewRuntimeWithConfig(ctx, cfg)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, h.rt); err != nil {
		h.Close(ctx)
		return nil, fmt.Errorf("wasmhost: wasi: %w", err)
	}
	if err := h.instantiateHostModule(ctx); err != nil {
		h.Close(ctx)
		return nil, err
	}
	return h, nil
}

// Close releases the runtime and every module loaded on it.
func (h *Host) Close(ctx context.Context) error {
	err := h.rt.Close(ctx)
	if h.cache != nil {
		err = errors.Join(err, h.cache.Close(ctx))
	}
	return err
}

// Module is a compiled job module with its manifest and instance pool.
type Module struct {
	host     *Host
	compiled wazero.CompiledModule
	grants   Grants
	config   json.RawMessage
	manifest sdk.Manifest
	jobIndex map[string]int
	// CompileTime is how long compiling (or loading from cache) took.
	CompileTime time.Duration

	slots chan struct{} // one token per instance that may exist
	mu    sync.Mutex
	idle  []*instance
	logs  logBucket
}

// Load compiles wasm, instantiates it once to read its manifest, and
// returns the module ready for calls.
func (h *Host) Load(ctx context.Context, wasm []byte, grants Grants, config json.RawMessage) (*Module, error) {
	start := time.Now()
	if err := grants.check(); err != nil {
		return nil, err
	}
	if err := precheck(wasm); err != nil {
		return nil, fmt.Errorf("wasmhost: not a valid module: %w", err)
	}
	compiled, err := h.rt.CompileModule(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("wasmhost: not a valid module: %w", err)
	}
	m := &Module{
		host: h, compiled: compiled, grants: grants, config: config,
		CompileTime: time.Since(start),
		slots:       make(chan struct{}, h.opts.Instances),
	}
	for _, name := range []string{"tern_abi_version", "tern_alloc", "tern_describe", "tern_configure", "tern_try", "tern_run", "tern_sense", "_initialize"} {
		if _, ok := compiled.ExportedFunctions()[name]; !ok {
			compiled.Close(ctx)
			return nil, fmt.Errorf("wasmhost: module does not export %s: build it with the tern sdk and -buildmode=c-shared (see sdk/ABI.md)", name)
		}
	}
	out, err := m.call(ctx, PhasePlan, "tern_describe", nil)
	if err != nil {
		m.Close(ctx)
		return nil, fmt.Errorf("wasmhost: reading manifest: %w", err)
	}
	if err := json.Unmarshal(out, &m.manifest); err != nil {
		m.Close(ctx)
		return nil, fmt.Errorf("wasmhost: manifest is not JSON: %w", err)
	}
	if err := m.manifest.Validate(); err != nil {
		m.Close(ctx)
		return nil, err
	}
	// A manifest section (tern module build adds one) must say what the
	// module says of itself: tools and operators read the section.
	if sec, ok, err := modfile.Manifest(wasm); err != nil || ok && !sameManifest(sec, m.manifest) {
		m.Close(ctx)
		if err == nil {
			err = errors.New("its tern.manifest section does not match what tern_describe returns: rebuild it with tern module build")
		}
		return nil, fmt.Errorf("wasmhost: %w", err)
	}
	m.jobIndex = make(map[string]int, len(m.manifest.Jobs))
	for i, j := range m.manifest.Jobs {
		m.jobIndex[j.Name] = i
	}
	return m, nil
}

func sameManifest(a, b sdk.Manifest) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// MemorySize is the linear memory of an idle instance, in bytes (0 if
// none is idle).
func (m *Module) MemorySize() uint32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.idle) == 0 {
		return 0
	}
	return m.idle[0].mod.Memory().Size()
}

// Manifest is what the module declared about itself.
func (m *Module) Manifest() sdk.Manifest { return m.manifest }

// Close closes the module's instances and its compiled code.
func (m *Module) Close(ctx context.Context) error {
	m.mu.Lock()
	idle := m.idle
	m.idle = nil
	m.mu.Unlock()
	for _, inst := range idle {
		inst.mod.Close(ctx)
	}
	return m.compiled.Close(ctx)
}

// index is the manifest position of a job or sensor, which is how calls
// name them on the wire.
func (m *Module) index(export, name string) (int, error) {
	if export == "sense" {
		for i, s := range m.manifest.Sensors {
			if s.Name == name {
				return i, nil
			}
		}
		return 0, fmt.Errorf("wasmhost: module %s has no sensor %q", m.manifest.Name, name)
	}
	if i, ok := m.jobIndex[name]; ok {
		return i, nil
	}
	return 0, fmt.Errorf("wasmhost: module %s has no job %q", m.manifest.Name, name)
}

// Try asks a job whether it applies to c and, if so, what it does
// (tern_try, planning phase). A module's own error is returned as a plain
// error; a misbehaving module's as ErrCall.
func (m *Module) Try(ctx context.Context, c sdk.Call) (sdk.Try, error) {
	i, err := m.index("try", c.Job)
	if err != nil {
		return sdk.Try{}, err
	}
	out, err := m.call(ctx, PhasePlan, "tern_try", sdk.EncodeCall(nil, i, c))
	if err != nil {
		return sdk.Try{}, err
	}
	t, modErr, err := sdk.DecodeTry(out)
	if err != nil {
		return sdk.Try{}, fmt.Errorf("%w: tern_try: %v", ErrCall, err)
	}
	return t, modErr
}

// Call invokes "run" or "sense" with c and returns the result's value (JSON;
// nil if none). A module's own error is returned as a plain error; a
// misbehaving module's as ErrCall.
func (m *Module) Call(ctx context.Context, phase Phase, export string, c sdk.Call) (json.RawMessage, error) {
	i, err := m.index(export, c.Job)
	if err != nil {
		return nil, err
	}
	out, err := m.call(ctx, phase, "tern_"+export, sdk.EncodeCall(nil, i, c))
	if err != nil {
		return nil, err
	}
	v, modErr, err := sdk.DecodeValue(out)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCall, export, err)
	}
	return v, modErr
}

type callKey struct{}

type callInfo struct {
	module *Module
	phase  Phase
	ports  []serial.Port // opened during the call; closed when it ends
}

// call borrows an instance, writes in to its memory, calls fn, and copies
// the output out. The instance goes back to the pool only if all went well.
func (m *Module) call(ctx context.Context, phase Phase, fn string, in []byte) ([]byte, error) {
	select {
	case m.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-m.slots }()

	ctx, cancel := context.WithTimeout(ctx, m.host.opts.CallTimeout)
	defer cancel()
	ci := &callInfo{module: m, phase: phase}
	ctx = context.WithValue(ctx, callKey{}, ci)
	defer ci.closePorts()

	inst, err := m.instance(ctx)
	if err != nil {
		return nil, err
	}
	if phase == PhasePlan {
		inst.clock.freeze(planTime(ctx))
		defer inst.clock.freeze(time.Time{})
	}
	if dl, ok := ctx.Deadline(); ok {
		inst.clock.deadline.Store(dl.UnixNano())
		defer inst.clock.deadline.Store(0)
	}
	out, err := m.invoke(ctx, inst, fn, in)
	dl, hasDeadline := ctx.Deadline()
	late := errors.Is(ctx.Err(), context.DeadlineExceeded) || hasDeadline && !time.Now().Before(dl)
	if err == nil && late {
		err = errors.New("returned after its deadline") // e.g. a long sleep cut short
	}
	if err != nil {
		full := ""
		// A module near its cap most likely failed for want of memory
		// (memory.grow fails quietly; what the module does next varies).
		if limit, size := uint64(m.host.opts.MemoryLimitPages)*65536, uint64(inst.mod.Memory().Size()); size >= limit/8*7 {
			full = fmt.Sprintf(" (its memory is at %d MiB of the %d MiB cap)", size>>20, limit>>20)
		}
		inst.mod.Close(context.Background())
		if late {
			return nil, fmt.Errorf("%w: %s: exceeded its %v deadline%s", ErrCall, fn, m.host.opts.CallTimeout, full)
		}
		return nil, fmt.Errorf("%w: %s: %v%s", ErrCall, fn, err, full)
	}
	m.mu.Lock()
	m.idle = append(m.idle, inst)
	m.mu.Unlock()
	return out, nil
}

// instance is one instantiation of a module, with its exports looked up
// once and the input buffer it last allocated, reused while big enough.
type instance struct {
	clock   *clock
	mod     api.Module
	fns     map[string]api.Function
	alloc   api.Function
	buf     uint32 // address of the input buffer in the module's memory
	bufSize int
}

func (m *Module) instance(ctx context.Context) (*instance, error) {
	m.mu.Lock()
	if n := len(m.idle); n > 0 {
		inst := m.idle[n-1]
		m.idle = m.idle[:n-1]
		m.mu.Unlock()
		return inst, nil
	}
	m.mu.Unlock()
	clk := &clock{}
	cfg := wazero.NewModuleConfig().
		WithName(""). // anonymous: many instances of one module
		WithStartFunctions("_initialize").
		WithStderr(logWriter{m}).
		WithStdout(logWriter{m}).
		WithWalltime(clk.walltime, sys.ClockResolution(time.Microsecond)).
		WithNanotime(clk.nanotime, sys.ClockResolution(time.Microsecond)).
		WithNanosleep(clk.nanosleep)
	// _initialize runs Go's runtime and package inits, which must not touch
	// hardware: give it the planning phase.
	ictx := context.WithValue(ctx, callKey{}, &callInfo{module: m, phase: PhasePlan})
	mod, err := m.host.rt.InstantiateModule(ictx, m.compiled, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: instantiating: %v", ErrCall, err)
	}
	inst := &instance{clock: clk, mod: mod, fns: map[string]api.Function{}, alloc: mod.ExportedFunction("tern_alloc")}
	for _, name := range []string{"tern_describe", "tern_configure", "tern_try", "tern_run", "tern_sense"} {
		inst.fns[name] = mod.ExportedFunction(name)
	}
	config := m.config
	if len(config) == 0 {
		config = json.RawMessage("null")
	}
	if _, err := m.invoke(ictx, inst, "tern_configure", config); err != nil {
		mod.Close(context.Background())
		return nil, fmt.Errorf("%w: tern_configure: %v", ErrCall, err)
	}
	return inst, nil
}

// invoke writes in to the instance's input buffer (asking tern_alloc for
// a bigger one when needed), calls fn and copies its output out.
func (m *Module) invoke(ctx context.Context, inst *instance, fn string, in []byte) ([]byte, error) {
	var params []uint64
	if in != nil {
		if len(in) > inst.bufSize || inst.bufSize == 0 {
			size := max(len(in), 4096)
			res, err := inst.alloc.Call(ctx, uint64(size))
			if err != nil {
				return nil, err
			}
			inst.buf, inst.bufSize = uint32(res[0]), size
		}
		if !inst.mod.Memory().Write(inst.buf, in) {
			return nil, fmt.Errorf("tern_alloc returned %#x, outside memory", inst.buf)
		}
		params = []uint64{uint64(inst.buf), uint64(len(in))}
	}
	f := inst.fns[fn]
	if f == nil {
		return nil, fmt.Errorf("no export %s", fn)
	}
	res, err := f.Call(ctx, params...)
	if err != nil {
		return nil, err
	}
	ptr, size := uint32(res[0]>>32), uint32(res[0])
	if size > m.host.opts.MaxOutput {
		return nil, fmt.Errorf("returned %d bytes, more than the %d allowed", size, m.host.opts.MaxOutput)
	}
	b, ok := inst.mod.Memory().Read(ptr, size)
	if !ok {
		return nil, fmt.Errorf("returned a buffer outside its memory (%#x+%d)", ptr, size)
	}
	return slices.Clone(b), nil
}

// logWriter takes what a module writes to stdout or stderr into the log,
// under the same rate limit as the log host function.
type logWriter struct{ m *Module }

func (w logWriter) Write(p []byte) (int, error) {
	h := w.m.host
	if dropped, flood := w.m.logs.take(time.Now(), h.opts.LogRate); dropped {
		if flood {
			h.opts.Notify(w.m.manifest.Name, fmt.Sprintf("log flood on stdout/stderr: more than %d writes a second; output is dropped until it slows down", h.opts.LogRate))
		}
		return len(p), nil
	}
	h.opts.Logger.Warn("module output", "module", w.m.manifest.Name, "text", string(p[:min(len(p), maxLog)]))
	return len(p), nil
}
