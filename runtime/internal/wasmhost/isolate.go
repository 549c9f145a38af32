package wasmhost

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tetratelabs/wazero"
)

// Isolation runs a module's first decode and compile in a child process
// under a memory limit and a deadline, so that no module, however it is
// built, can take the agent down by what compiling it costs (see
// RATIONALE.md, "The sandbox"). The child fills the on-disk compilation
// cache; the agent then loads the compiled code from it.
type Isolation struct {
	// Command is the child's argv: a program that runs ServeCompile with
	// the arguments Isolation appends (ternd's is "ternd compile-module").
	// Empty: modules are compiled in the agent's process, bounded only by
	// precheck (tools, and tests that do not exercise isolation).
	Command []string
	// Timeout bounds one compile. Default 1 min.
	Timeout time.Duration
	// MemoryMiB bounds the child's address space growth while it
	// compiles, in MiB. Default 1024.
	MemoryMiB int
}

func (i Isolation) withDefaults() Isolation {
	if i.Timeout == 0 {
		i.Timeout = time.Minute
	}
	if i.MemoryMiB == 0 {
		i.MemoryMiB = 1024
	}
	return i
}

// ErrCompile matches a module refused because compiling it went past the
// isolation's time or memory bound.
var ErrCompile = errors.New("wasmhost: compiling the module went past its bound")

// CompileStats is what compiling a module in a child process cost.
type CompileStats struct {
	Wall   time.Duration
	MaxRSS int64 // bytes, the child's peak resident memory
}

// compileIsolated compiles wasm in a child process, into the cache at dir.
func (h *Host) compileIsolated(ctx context.Context, wasm []byte) (CompileStats, error) {
	iso := h.opts.Isolation
	ctx, cancel := context.WithTimeout(ctx, iso.Timeout)
	defer cancel()
	args := append(iso.Command[1:len(iso.Command):len(iso.Command)],
		"--cache", h.opts.CacheDir,
		"--memory-mib", strconv.Itoa(iso.MemoryMiB),
		"--memory-pages", strconv.FormatUint(uint64(h.opts.MemoryLimitPages), 10),
		"--table-entries", strconv.FormatUint(uint64(h.opts.maxTableEntries()), 10),
	)
	if h.opts.Interpreter {
		args = append(args, "--interpreter")
	}
	cmd := exec.CommandContext(ctx, iso.Command[0], args...)
	cmd.Stdin = bytes.NewReader(wasm)
	var stderr bytes.Buffer
	cmd.Stderr = &limitedWriter{w: &stderr, n: 8 << 10}
	cmd.Env = append(os.Environ(), "GOTRACEBACK=none")
	start := time.Now()
	if err := cmd.Start(); err != nil {
		if ctx.Err() != nil { // the deadline, or a stop, came first
			return CompileStats{}, compileTimeout(ctx, iso)
		}
		// Nothing the module did: the child cannot run here at all (under
		// qemu-user without binfmt, say).
		return CompileStats{}, fmt.Errorf("%w: %v", errNoChild, err)
	}
	err := cmd.Wait()
	st := CompileStats{Wall: time.Since(start)}
	if ps := cmd.ProcessState; ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			st.MaxRSS = int64(ru.Maxrss) << 10
		}
	}
	msg := strings.TrimSpace(stderr.String())
	switch {
	case err == nil:
		return st, nil
	case ctx.Err() != nil:
		return st, compileTimeout(ctx, iso)
	case strings.Contains(msg, "out of memory") || strings.Contains(msg, "cannot allocate memory"):
		return st, fmt.Errorf("%w: compiling needed more than %d MiB (module_limits.compile_memory_mib in ternd.yaml); make the module smaller", ErrCompile, iso.MemoryMiB)
	case strings.HasPrefix(msg, compileRefusal):
		return st, errors.New(strings.TrimPrefix(msg, compileRefusal))
	default:
		if msg == "" {
			msg = err.Error()
		}
		return st, fmt.Errorf("%w: the compiler process failed: %s", ErrCompile, firstLines(msg, 3))
	}
}

// compileTimeout says why a compile whose context ended did not finish:
// its deadline, or the caller's stop.
func compileTimeout(ctx context.Context, iso Isolation) error {
	if errors.Is(context.Cause(ctx), context.DeadlineExceeded) && !errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("%w: compiling took longer than %v (module_limits.compile_timeout in ternd.yaml); make the module smaller or its functions simpler", ErrCompile, iso.Timeout)
	}
	return fmt.Errorf("wasmhost: compiling stopped: %w", ctx.Err())
}

// errNoChild: the compile child could not be started.
var errNoChild = errors.New("the compile child process cannot be started")

// compileRefusal starts the child's message for a module it refused (as
// opposed to one it died on).
const compileRefusal = "refused: "

// ServeCompile is the child side of Isolation: it reads a module from in,
// limits its own address space, and compiles the module into the cache
// named by args (the ones compileIsolated passes). It returns the exit
// code: 0 compiled, 1 refused (the reason on stderr), 2 bad arguments.
func ServeCompile(args []string, in io.Reader, stderr io.Writer) int {
	var (
		cache                string
		memMiB, pages, table uint64
		interp               bool
	)
	for i := 0; i < len(args); i++ {
		num := func(dst *uint64) bool {
			if i+1 >= len(args) {
				return false
			}
			i++
			v, err := strconv.ParseUint(args[i], 10, 32)
			*dst = v
			return err == nil
		}
		ok := true
		switch args[i] {
		case "--cache":
			ok = i+1 < len(args)
			if ok {
				i++
				cache = args[i]
			}
		case "--memory-mib":
			ok = num(&memMiB)
		case "--memory-pages":
			ok = num(&pages)
		case "--table-entries":
			ok = num(&table)
		case "--interpreter":
			interp = true
		default:
			ok = false
		}
		if !ok {
			fmt.Fprintf(stderr, "compile-module: bad argument %q\n", args[i])
			return 2
		}
	}
	if cache == "" || memMiB == 0 || pages == 0 || table == 0 {
		fmt.Fprintln(stderr, "compile-module: --cache, --memory-mib, --memory-pages and --table-entries are required")
		return 2
	}
	if err := limitAddressSpace(memMiB << 20); err != nil {
		fmt.Fprintf(stderr, "compile-module: %v\n", err)
		return 2
	}
	wasm, err := io.ReadAll(io.LimitReader(in, MaxModuleSize+1))
	if err != nil {
		fmt.Fprintf(stderr, "compile-module: reading the module: %v\n", err)
		return 2
	}
	ctx := context.Background()
	opts := Options{CacheDir: cache, MemoryLimitPages: uint32(pages), TableEntries: uint32(table), Interpreter: interp}.withDefaults()
	wasm, err = precheck(wasm, opts.maxTableEntries())
	if err != nil {
		fmt.Fprintf(stderr, "%snot a valid module: %v\n", compileRefusal, err)
		return 1
	}
	c, err := wazero.NewCompilationCacheWithDir(cache)
	if err != nil {
		fmt.Fprintf(stderr, "compile-module: compilation cache %s: %v\n", cache, err)
		return 2
	}
	rt := wazero.NewRuntimeWithConfig(ctx, runtimeConfig(opts).WithCompilationCache(c))
	if _, err := rt.CompileModule(ctx, wasm); err != nil {
		fmt.Fprintf(stderr, "%snot a valid module: %v\n", compileRefusal, err)
		return 1
	}
	if err := rt.Close(ctx); err != nil {
		fmt.Fprintf(stderr, "compile-module: %v\n", err)
		return 2
	}
	return 0
}

// limitAddressSpace lets the process map at most n more bytes than it has
// mapped now: Go reserves address space up front, so an absolute limit
// would mean different things on different builds.
func limitAddressSpace(n uint64) error {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return fmt.Errorf("reading the address space size: %w", err)
	}
	var vm uint64
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmSize:"); ok {
			fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), &vm)
		}
	}
	if vm == 0 {
		return errors.New("no VmSize in /proc/self/status")
	}
	lim := &syscall.Rlimit{Cur: vm<<10 + n, Max: vm<<10 + n}
	if err := syscall.Setrlimit(syscall.RLIMIT_AS, lim); err != nil {
		return fmt.Errorf("limiting the address space: %w", err)
	}
	return nil
}

type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		q := p[:min(len(p), l.n)]
		l.n -= len(q)
		l.w.Write(q)
	}
	return len(p), nil
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(len(lines), n)], " / ")
}

// checkImports refuses a module that imports what the host does not
// provide, naming the import (wazero's own message, "module[env] not
// instantiated", names neither the import nor the function).
func (h *Host) checkImports(c wazero.CompiledModule) error {
	tern := h.rt.Module("tern").ExportedFunctionDefinitions()
	for _, f := range c.ImportedFunctions() {
		mod, name, _ := f.Import()
		switch {
		case mod == "wasi_snapshot_preview1": // wazero names a missing WASI function itself
		case mod == "tern" && tern[name] != nil:
		default:
			return fmt.Errorf("module imports function %q.%q, which tern does not provide: it may import only the functions of module \"tern\" listed in sdk/ABI.md and WASI (\"wasi_snapshot_preview1\")", mod, name)
		}
	}
	for _, m := range c.ImportedMemories() {
		mod, name, _ := m.Import()
		return fmt.Errorf("module imports memory %q.%q, which tern does not provide: a module defines its own memory", mod, name)
	}
	return nil
}

// compiles holds a lock per cache directory and module hash.
var compiles sync.Map // string → *sync.Mutex

// lockCompile makes compiles of the same code (hashed sum) into the same
// cache, by hosts of one process, one at a time; it returns the unlock.
func lockCompile(cacheDir string, sum [sha256.Size]byte) func() {
	mu, _ := compiles.LoadOrStore(cacheDir+"\x00"+string(sum[:]), &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	return mu.(*sync.Mutex).Unlock
}
