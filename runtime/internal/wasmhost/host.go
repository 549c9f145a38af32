package wasmhost

import (
	"context"
	crand "crypto/rand"
	"crypto/sha256"
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
	"github.com/tern-iot/tern/sdk/abi"
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
	// SenseTimeout bounds one sensor call (PhaseSense). Default CallTimeout.
	SenseTimeout time.Duration
	// MaxOutput caps the bytes a module may return from one call. Default 1 MiB.
	MaxOutput uint32
	// Instances is the most instances of one module at once, which is
	// how many calls into it may run at once. A second instance is made
	// only when a call would otherwise wait for the first longer than
	// making one takes (see Module.instance). Default 2.
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
	// Observe, if set, hears how long each call into a module took (its
	// instance's run, not the wait for one): the agent's module call
	// time metric. It runs on the caller's goroutine; keep it cheap.
	Observe func(module string, took time.Duration)
	// TableEntries caps the entries of each of an instance's tables (8
	// bytes each). A table declared bigger, or without a maximum, has
	// its maximum lowered to it: growing past it fails inside the
	// module. Default 65536 (512 KiB); Go modules use a few thousand.
	TableEntries uint32
	// Isolation compiles new modules in a child process under a time and
	// memory bound. Zero: in the agent's process (CacheDir is required
	// for isolation, which fills it).
	Isolation Isolation
}

func (o Options) maxTableEntries() uint32 {
	if o.TableEntries == 0 {
		return 1 << 16
	}
	return o.TableEntries
}

func (o Options) withDefaults() Options {
	if o.MemoryLimitPages == 0 {
		o.MemoryLimitPages = 2048
	}
	if o.CallTimeout == 0 {
		o.CallTimeout = 10 * time.Second
	}
	if o.SenseTimeout == 0 {
		o.SenseTimeout = o.CallTimeout
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
	o.Isolation = o.Isolation.withDefaults()
	return o
}

// runtimeConfig is the wazero configuration of a host. The compile child
// uses it too: the compiled code it caches is keyed by it.
func runtimeConfig(o Options) wazero.RuntimeConfig {
	cfg := wazero.NewRuntimeConfig()
	if o.Interpreter {
		cfg = wazero.NewRuntimeConfigInterpreter()
	}
	return cfg.
		WithMemoryLimitPages(o.MemoryLimitPages).
		// DWARF sections are parsed at decode when enabled: module bytes
		// the agent gains nothing from and must not spend time on.
		WithDebugInfoEnabled(false).
		// A call past its deadline must stop even in a tight loop. wazero
		// then checks the context in loops, which costs speed; see RATIONALE.md.
		WithCloseOnContextDone(true)
}

// Host loads and runs modules.
type Host struct {
	opts  Options
	rt    wazero.Runtime
	cache wazero.CompilationCache

	noChild sync.Once // warned that the compile child cannot run
}

// ErrCall wraps every failure of a call into a module: a trap, a deadline,
// a malformed result. The module misbehaved; the host is fine.
var ErrCall = errors.New("wasmhost: module call failed")

// New creates a host. Close it to release the runtime and the cache.
func New(ctx context.Context, opts Options) (*Host, error) {
	opts = opts.withDefaults()
	if len(opts.Isolation.Command) > 0 && opts.CacheDir == "" {
		return nil, errors.New("wasmhost: compiling in a child process needs a compilation cache: set CacheDir")
	}
	cfg := runtimeConfig(opts)
	h := &Host{opts: opts}
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
	manifest abi.Manifest
	// requests is what the manifest requests (sdk.Requests), looked up
	// once: the host functions check it on every call.
	requests struct{ gpio, i2c, serial bool }
	jobIndex map[string]int
	// CompileTime is how long compiling (or loading from cache) took.
	CompileTime time.Duration
	// Compile is what compiling cost in the isolation child (zero when
	// the module was compiled in process or checked before).
	Compile CompileStats

	slots  chan struct{} // one token per instance that may exist
	mu     sync.Mutex
	idle   []*instance
	busy   int           // instances in calls
	freed  chan struct{} // closed, and replaced, when a call gives its instance back
	made   time.Duration // what making the last instance took
	closed bool
	watch  watch // refusals, log and write rates
}

// Load compiles wasm, instantiates it once to read its manifest, and
// returns the module ready for calls.
func (h *Host) Load(ctx context.Context, wasm []byte, grants Grants, config json.RawMessage) (*Module, error) {
	return h.load(ctx, wasm, nil, grants, config)
}

// LoadHashed is Load for a caller that has hashed wasm already: sum is its
// SHA-256. A Go module takes tens of ms to hash on a board without SHA
// instructions (a Raspberry Pi 4's Cortex-A72 has none).
func (h *Host) LoadHashed(ctx context.Context, wasm []byte, sum [sha256.Size]byte, grants Grants, config json.RawMessage) (*Module, error) {
	return h.load(ctx, wasm, &sum, grants, config)
}

func (h *Host) load(ctx context.Context, wasm []byte, hashed *[sha256.Size]byte, grants Grants, config json.RawMessage) (*Module, error) {
	start := time.Now()
	if err := checkGrants(grants); err != nil {
		return nil, err
	}
	// Hosts of one process that share a cache (the testbench's agents)
	// compile the same code once: the others wait, then load it cached.
	var sum [sha256.Size]byte
	checked := false
	if h.opts.CacheDir != "" && len(wasm) <= MaxModuleSize {
		if hashed != nil {
			sum = *hashed
		} else {
			sum = sha256.Sum256(wasm)
		}
		unlock := lockCompile(h.opts.CacheDir, sum)
		defer unlock()
		if len(h.opts.Isolation.Command) > 0 {
			var known []byte
			var release func()
			if known, release, checked = h.checkedCode(sum); checked {
				// Nothing reads the code once compiled: wazero drops the
				// function bodies, the only part it keeps of it
				// (third_party/README.md, patches 4 and 7).
				defer release()
				wasm = known
			}
		}
	}
	var err error
	if !checked {
		if wasm, err = precheck(wasm, h.opts.maxTableEntries()); err != nil {
			return nil, fmt.Errorf("wasmhost: not a valid module: %w", err)
		}
	}
	var stats CompileStats
	if len(h.opts.Isolation.Command) > 0 && !checked {
		stats, err = h.compileIsolated(ctx, wasm)
		switch {
		case errors.Is(err, errNoChild):
			h.noChild.Do(func() {
				h.opts.Logger.Warn("compiling modules in the agent's process, bounded only by the pre-decode checks", "err", err)
			})
		case err != nil:
			return nil, fmt.Errorf("wasmhost: %w", err)
		default:
			h.rememberChecked(sum, wasm)
		}
	}
	compiled, err := h.rt.CompileModule(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("wasmhost: not a valid module: %w", err)
	}
	if err := h.checkImports(compiled); err != nil {
		compiled.Close(ctx)
		return nil, fmt.Errorf("wasmhost: %w", err)
	}
	m := &Module{
		host: h, compiled: compiled, grants: grants, config: config,
		CompileTime: time.Since(start), Compile: stats,
		slots: make(chan struct{}, h.opts.Instances), freed: make(chan struct{}),
	}
	m.watch.lines = grantedLines(grants)
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
	m.requests.gpio = m.manifest.Requests("gpio")
	m.requests.i2c = m.manifest.Requests("i2c")
	m.requests.serial = m.manifest.Requests("serial")
	m.jobIndex = make(map[string]int, len(m.manifest.Jobs))
	for i, j := range m.manifest.Jobs {
		m.jobIndex[j.Name] = i
	}
	return m, nil
}

func sameManifest(a, b abi.Manifest) bool {
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
func (m *Module) Manifest() abi.Manifest { return m.manifest }

// Close closes the module's instances and its compiled code. A call still
// in flight (a sensor round running on) finishes, and its instance is
// closed when it ends.
func (m *Module) Close(ctx context.Context) error {
	m.mu.Lock()
	idle := m.idle
	m.idle, m.closed = nil, true
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
func (m *Module) Try(ctx context.Context, c abi.Call) (abi.Try, error) {
	i, err := m.index("try", c.Job)
	if err != nil {
		return abi.Try{}, err
	}
	out, err := m.call(ctx, PhasePlan, "tern_try", abi.EncodeCall(nil, i, c))
	if err != nil {
		return abi.Try{}, err
	}
	t, modErr, err := abi.DecodeTry(out)
	if err != nil {
		return abi.Try{}, fmt.Errorf("%w: tern_try: %v", ErrCall, err)
	}
	return t, modErr
}

// Call invokes "run" or "sense" with c and returns the result's value (JSON;
// nil if none). A module's own error is returned as a plain error; a
// misbehaving module's as ErrCall.
func (m *Module) Call(ctx context.Context, phase Phase, export string, c abi.Call) (json.RawMessage, error) {
	i, err := m.index(export, c.Job)
	if err != nil {
		return nil, err
	}
	out, err := m.call(ctx, phase, "tern_"+export, abi.EncodeCall(nil, i, c))
	if err != nil {
		return nil, err
	}
	v, modErr, err := abi.DecodeValue(out)
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
	state  StateReader   // what state_read reads; nil: nothing (state.go)
	read   struct {      // the last state_read's answer, for a retry with a larger buffer
		path string
		b    []byte
	}
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

	timeout := m.host.opts.CallTimeout
	if phase == PhaseSense {
		timeout = m.host.opts.SenseTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ci := &callInfo{module: m, phase: phase, state: stateFrom(ctx, phase)}
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
	began := time.Now()
	out, err := m.invoke(ctx, inst, fn, in)
	if obs := m.host.opts.Observe; obs != nil && m.manifest.Name != "" {
		obs(m.manifest.Name, time.Since(began))
	}
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
		m.release(nil)
		if late {
			return nil, fmt.Errorf("%w: %s: exceeded its %v deadline%s", ErrCall, fn, timeout, full)
		}
		return nil, fmt.Errorf("%w: %s: %v%s", ErrCall, fn, err, full)
	}
	if m.release(inst) {
		inst.mod.Close(context.Background())
	}
	return out, nil
}

// release ends a call's hold on its instance: back to the pool if inst is
// not nil, else (closed after a failed call) gone. It reports whether the
// module was closed meanwhile, when inst is the caller's to close.
func (m *Module) release(inst *instance) (closed bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.busy--
	if inst != nil && !m.closed {
		m.idle = append(m.idle, inst)
	}
	close(m.freed) // wakes the calls waiting for an instance
	m.freed = make(chan struct{})
	return inst != nil && m.closed
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

// instance takes an idle instance, or makes one. A call that finds every
// instance busy waits for one to come back, but no longer than making one
// took the last time: calls that overlap by microseconds (the jobs of one
// plan run in parallel) share one instance, and only a call that would
// otherwise wait longer than an instantiation (behind a slow sensor, say)
// gets another. An instance of a Go module costs milliseconds to make
// and megabytes to keep (RATIONALE.md, "One instance until a call waits").
func (m *Module) instance(ctx context.Context) (*instance, error) {
	m.mu.Lock()
	if len(m.idle) == 0 && m.busy > 0 {
		t := time.NewTimer(m.made)
		defer t.Stop()
	wait:
		for len(m.idle) == 0 && m.busy > 0 {
			freed := m.freed
			m.mu.Unlock()
			select {
			case <-freed:
			case <-t.C:
				m.mu.Lock()
				break wait
			case <-ctx.Done():
				return nil, fmt.Errorf("wasmhost: waiting for a free instance of the module: %w", ctx.Err())
			}
			m.mu.Lock()
		}
	}
	m.busy++
	if n := len(m.idle); n > 0 {
		inst := m.idle[n-1]
		m.idle = m.idle[:n-1]
		m.mu.Unlock()
		return inst, nil
	}
	m.mu.Unlock()
	inst, err := m.newInstance(ctx)
	if err != nil {
		m.release(nil)
	}
	return inst, err
}

// newInstance instantiates the module and configures the instance.
func (m *Module) newInstance(ctx context.Context) (*instance, error) {
	start := time.Now()
	defer func() {
		m.mu.Lock()
		m.made = time.Since(start)
		m.mu.Unlock()
	}()
	clk := &clock{}
	cfg := wazero.NewModuleConfig().
		WithName(""). // anonymous: many instances of one module
		WithStartFunctions("_initialize").
		WithStderr(logWriter{m}).
		WithStdout(logWriter{m}).
		WithWalltime(clk.walltime, sys.ClockResolution(time.Microsecond)).
		WithNanotime(clk.nanotime, sys.ClockResolution(time.Microsecond)).
		WithNanosleep(clk.nanosleep).
		// wazero's default source is seeded the same everywhere: a Go
		// module's crypto/rand would be predictable.
		WithRandSource(crand.Reader)
	// _initialize runs Go's runtime and package inits, which must not touch
	// hardware: give it the planning phase.
	ictx := context.WithValue(ctx, callKey{}, &callInfo{module: m, phase: PhasePlan})
	mems := &memories{}
	mod, err := m.host.rt.InstantiateModule(withMemories(ictx, mems), m.compiled, cfg)
	if err != nil {
		mems.free()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w: instantiating: its start function (_initialize, or a start section) did not return before the call's deadline (module_limits.call_timeout, or sensor_timeout for a sensor, in ternd.yaml)", ErrCall)
		}
		if ctx.Err() != nil { // the agent is stopping: not the module's fault
			return nil, fmt.Errorf("wasmhost: instantiating: %w", ctx.Err())
		}
		return nil, fmt.Errorf("%w: instantiating (its start function _initialize): %v", ErrCall, err)
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
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: tern_configure did not return before the call's deadline (module_limits.call_timeout, or sensor_timeout for a sensor, in ternd.yaml)", ErrCall)
		}
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
	if !w.m.watch.allowLog(time.Now(), h.opts.LogRate) {
		w.m.refuse(logFlood, "")
		return len(p), nil
	}
	h.opts.Logger.Warn("module output", "module", w.m.manifest.Name, "text", string(p[:min(len(p), maxLog)]))
	return len(p), nil
}
