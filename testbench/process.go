package testbench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tern-iot/tern/internal/daemon"
)

// Defaults of ProcessOptions.
const (
	// DefaultReadyTimeout bounds how long a ternd process may take to log
	// "ternd started" (store open, modules compiled or loaded from the
	// compilation cache).
	DefaultReadyTimeout = 60 * time.Second
	// DefaultStopTimeout is how long Stop waits after SIGTERM before it
	// sends SIGKILL.
	DefaultStopTimeout = 10 * time.Second
)

// ProcessOptions configure a [ProcessAgent]: one ternd process.
type ProcessOptions struct {
	// Config is ternd's configuration, written as Dir/ternd.yaml. Its
	// DataDir defaults to Dir/data; Board to "sim" (whose simulated devices
	// go in Config.Sim); the rest take ternd's defaults.
	Config daemon.Config
	// Dir holds the configuration file and, by default, the data
	// directory. Required; it outlives the process so that Restart finds
	// the store again.
	Dir string
	// Binary is the ternd executable. Empty: [TerndBinary] builds it.
	Binary string
	// Log, if not nil, receives a copy of the process's output (stderr and
	// stdout) as it is written. The output is kept in any case; see
	// [ProcessAgent.Log].
	Log io.Writer
	// ReadyTimeout bounds each start; default DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// StopTimeout is how long Stop waits after SIGTERM; default
	// DefaultStopTimeout.
	StopTimeout time.Duration
}

// ProcessAgent is a ternd process on a generated configuration and data
// directory, for the faults that need a real process: SIGKILL at any
// moment and a restart on the same store. Its methods are safe for
// concurrent use; the process runs until Stop or Kill (it does not end
// with the context given to StartProcess).
type ProcessAgent struct {
	opts ProcessOptions
	conf string // the configuration file

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when the current process has exited
	err    error         // how it exited, once exited
	starts int
	log    *lockedBuffer
}

// StartProcess writes the configuration and starts ternd, and returns once
// ternd has logged that it started, or with an error carrying its log if
// it exits or does not start within ReadyTimeout. ctx bounds the start,
// building the binary included; cancelling it later does not stop the
// process: Stop or Kill does.
func StartProcess(ctx context.Context, opts ProcessOptions) (*ProcessAgent, error) {
	p, err := NewProcess(ctx, opts)
	if err != nil {
		return nil, err
	}
	if err := p.start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// NewProcess prepares a ternd process as StartProcess does (configuration
// written, binary built) without starting it: Start does. ctx bounds the
// build.
func NewProcess(ctx context.Context, opts ProcessOptions) (*ProcessAgent, error) {
	if opts.Dir == "" {
		return nil, errors.New("testbench: ProcessOptions.Dir is empty; give the process a directory of its own (t.TempDir())")
	}
	if opts.Config.Device == "" {
		return nil, errors.New("testbench: ProcessOptions.Config.Device is empty; every ternd needs a device id")
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = DefaultReadyTimeout
	}
	if opts.StopTimeout == 0 {
		opts.StopTimeout = DefaultStopTimeout
	}
	if opts.Config.DataDir == "" {
		opts.Config.DataDir = filepath.Join(opts.Dir, "data")
	}
	for _, d := range []struct {
		field *string
		def   string
	}{
		{&opts.Config.Board, "sim"}, {&opts.Config.Fleet, "default"}, {&opts.Config.LogLevel, "info"},
	} {
		if *d.field == "" {
			*d.field = d.def
		}
	}
	if err := opts.Config.Validate(); err != nil {
		return nil, fmt.Errorf("testbench: ternd configuration for %s: %w", opts.Config.Device, err)
	}
	if opts.Binary == "" {
		bin, err := TerndBinary(ctx)
		if err != nil {
			return nil, err
		}
		opts.Binary = bin
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("testbench: %w", err)
	}
	// JSON is YAML, and Config's JSON names are its YAML names.
	b, err := json.MarshalIndent(opts.Config, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("testbench: encode the ternd configuration: %w", err)
	}
	p := &ProcessAgent{opts: opts, conf: filepath.Join(opts.Dir, "ternd.yaml"), log: new(lockedBuffer)}
	if err := os.WriteFile(p.conf, b, 0o640); err != nil {
		return nil, fmt.Errorf("testbench: %w", err)
	}
	return p, nil
}

// ID is the agent's device id.
func (p *ProcessAgent) ID() string { return p.opts.Config.Device }

// DataDir is the directory of the agent's store and compilation cache.
func (p *ProcessAgent) DataDir() string { return p.opts.Config.DataDir }

// PID is the current process's id, 0 if it never started.
func (p *ProcessAgent) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Running reports whether the process is running.
func (p *ProcessAgent) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running()
}

func (p *ProcessAgent) running() bool {
	if p.exited == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Exited is closed when the current process exits, for whatever reason.
func (p *ProcessAgent) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited
}

// Starts counts the processes started: 1 after StartProcess, one more for
// every Restart.
func (p *ProcessAgent) Starts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts
}

// Stop sends SIGTERM and waits for the process to exit, as systemd stops
// ternd; after StopTimeout it sends SIGKILL. It returns an error if ternd
// did not exit cleanly, carrying the end of its log. Stopping a process
// that is not running does nothing.
func (p *ProcessAgent) Stop() error {
	exited, err := p.signal(syscall.SIGTERM)
	if err != nil || exited == nil {
		return err
	}
	select {
	case <-exited:
	case <-time.After(p.opts.StopTimeout):
		p.signal(syscall.SIGKILL)
		<-exited
		return fmt.Errorf("testbench: %s did not stop within %v of SIGTERM and was killed; its log ends:\n%s", p.ID(), p.opts.StopTimeout, p.Tail(40))
	}
	p.mu.Lock()
	err = p.err
	p.mu.Unlock()
	if err != nil {
		return fmt.Errorf("testbench: %s stopped with %v; its log ends:\n%s", p.ID(), err, p.Tail(40))
	}
	return nil
}

// Kill sends SIGKILL, a power cut as far as ternd can tell, and waits for
// the process to be gone. Killing a process that is not running does
// nothing.
func (p *ProcessAgent) Kill() error {
	exited, err := p.signal(syscall.SIGKILL)
	if err != nil || exited == nil {
		return err
	}
	<-exited
	return nil
}

// signal sends sig to the running process and returns its exited channel;
// nil when no process runs.
func (p *ProcessAgent) signal(sig syscall.Signal) (<-chan struct{}, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running() {
		return nil, nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return nil, fmt.Errorf("testbench: %s: send %v: %w", p.ID(), sig, err)
	}
	return p.exited, nil
}

// Start starts ternd if it is not running (StartProcess already did), and
// returns once it has started.
func (p *ProcessAgent) Start(ctx context.Context) error {
	if p.Running() {
		return nil
	}
	return p.start(ctx)
}

// Restart kills ternd with SIGKILL if it is running, a power cut as far as
// ternd can tell, then starts it again on the same configuration and data
// directory and returns once it has started, like StartProcess.
func (p *ProcessAgent) Restart(ctx context.Context) error {
	if p.Running() {
		if err := p.Kill(); err != nil {
			return err
		}
	}
	return p.start(ctx)
}

// A process agent is an Agent for the scenario runner.
var _ Agent = (*ProcessAgent)(nil)

// Log is everything the agent's processes wrote, each start marked with a
// line "=== testbench: start N".
func (p *ProcessAgent) Log() string { return p.log.String() }

// Tail is the last n lines of Log, for failure messages.
func (p *ProcessAgent) Tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Log(), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// start runs one process and waits until it is ready.
func (p *ProcessAgent) start(ctx context.Context) error {
	p.mu.Lock()
	p.starts++
	n := p.starts
	fmt.Fprintf(p.log, "=== testbench: start %d\n", n)
	ready := p.log.watch("ternd started")
	var out io.Writer = p.log
	if p.opts.Log != nil {
		out = io.MultiWriter(p.log, p.opts.Log)
	}
	cmd := exec.Command(p.opts.Binary, "run", "--config", p.conf)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		return fmt.Errorf("testbench: start ternd for %s: %w", p.ID(), err)
	}
	exited := make(chan struct{})
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
	go func() { // owned by the process: it ends when the process does
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(exited)
	}()

	timeout := time.NewTimer(p.opts.ReadyTimeout)
	defer timeout.Stop()
	select {
	case <-ready:
		return nil
	case <-exited:
		p.mu.Lock()
		err := p.err
		p.mu.Unlock()
		return fmt.Errorf("testbench: ternd for %s exited at start %d (%v); its log ends:\n%s", p.ID(), n, err, p.Tail(40))
	case <-timeout.C:
		p.Kill()
		return fmt.Errorf("testbench: ternd for %s did not log \"ternd started\" within %v and was killed; its log ends:\n%s", p.ID(), p.opts.ReadyTimeout, p.Tail(40))
	case <-ctx.Done():
		p.Kill()
		return fmt.Errorf("testbench: starting ternd for %s: %w", p.ID(), ctx.Err())
	}
}

// built is a command of tern's module built once per process.
type built struct {
	once sync.Once
	path string
	err  error
}

var terndBuild, ternBuild built

// TerndBinary builds cmd/ternd once per process, with go build in the
// current directory (which must be inside tern's module, as a test's is),
// into os.TempDir()/tern-testbench, one binary per source tree (go's build
// cache makes later builds quick), and returns its path. A program outside
// the module passes ProcessOptions.Binary instead (tern testbench run
// --ternd); the error says so.
func TerndBinary(ctx context.Context) (string, error) {
	return terndBuild.build(ctx, "ternd", "give a ternd of the same version (tern testbench run --ternd bin/ternd; ProcessOptions.Binary)")
}

// TernBinary is TerndBinary for cmd/tern, whose `tern broker` the
// cluster's nodes run ([StartCluster]; `tern testbench run` runs itself).
func TernBinary(ctx context.Context) (string, error) {
	return ternBuild.build(ctx, "tern", "give a tern of the same version (ClusterOptions.Binary)")
}

func (b *built) build(ctx context.Context, name, instead string) (string, error) {
	b.once.Do(func() {
		dir := filepath.Join(os.TempDir(), "tern-testbench")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.err = fmt.Errorf("testbench: build %s: %w", name, err)
			return
		}
		// Build beside, then rename: other test binaries may be running
		// the binary at the final path.
		tmp, err := os.CreateTemp(dir, name+"-*")
		if err != nil {
			b.err = fmt.Errorf("testbench: build %s: %w", name, err)
			return
		}
		tmp.Close()
		pkg := "github.com/tern-iot/tern/cmd/" + name
		cmd := exec.CommandContext(ctx, goTool(), "build", "-o", tmp.Name(), pkg)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			os.Remove(tmp.Name())
			wd, _ := os.Getwd()
			b.err = fmt.Errorf("testbench: go build %s in %s failed (%v): run from inside the tern source tree, or %s:\n%s", pkg, wd, err, instead, strings.TrimSpace(stderr.String()))
			return
		}
		// One name per source tree: two checkouts testing at once must
		// not run each other's binaries.
		wd, _ := os.Getwd()
		h := fnv.New32a()
		h.Write([]byte(wd))
		final := filepath.Join(dir, fmt.Sprintf("%s-%08x", name, h.Sum32()))
		if err := os.Rename(tmp.Name(), final); err != nil {
			b.err = fmt.Errorf("testbench: build %s: %w", name, err)
			return
		}
		b.path = final
	})
	return b.path, b.err
}

func goTool() string {
	if root := os.Getenv("GOROOT"); root != "" {
		if p := filepath.Join(root, "bin", "go"); fileExists(p) {
			return p
		}
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// lockedBuffer keeps a process's output; watch signals when a line
// containing a string is written.
type lockedBuffer struct {
	mu       sync.Mutex
	buf      bytes.Buffer
	watching string
	seen     chan struct{}
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seen != nil && bytes.Contains(p, []byte(b.watching)) {
		close(b.seen)
		b.seen = nil
	}
	return b.buf.Write(p)
}

// watch returns a channel closed when a write contains s.
func (b *lockedBuffer) watch(s string) <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.watching, b.seen = s, make(chan struct{})
	return b.seen
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
