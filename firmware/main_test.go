package firmware_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// builds holds the ternd binaries the tests build, shared by the tests of
// one run; TestMain removes it.
var builds string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tern-firmware-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	builds = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var buildMu sync.Mutex

// ternd builds cmd/ternd for goarch (goarm for arm) with version baked in,
// the way make dist does, once per run, and returns its path.
func ternd(t testing.TB, goarch, goarm, version string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	out := filepath.Join(builds, fmt.Sprintf("ternd-%s%s-%s", goarch, goarm, version))
	if _, err := os.Stat(out); err == nil {
		return out
	}
	cmd := exec.Command("go", "build", "-trimpath",
		"-ldflags=-s -w -buildid= -X github.com/tern-iot/tern/internal/version.Version="+version,
		"-o", out, "github.com/tern-iot/tern/cmd/ternd")
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+goarch, "GOARM="+goarm, "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build ternd %s for %s%s: %v\n%s", version, goarch, goarm, err, b)
	}
	return out
}

// wait bounds every wait for a process to say something.
const wait = 60 * time.Second

// proc is a ternd process whose log lines the test reads.
type proc struct {
	cmd   *exec.Cmd
	lines chan string
	mu    sync.Mutex
	log   bytes.Buffer
	done  chan struct{}
	err   error
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return startEnv(t, nil, name, args...)
}

// startEnv starts name with env added to the test's environment, less
// systemd's notification socket and the boot marker.
func startEnv(t *testing.T, env []string, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(name, args...), lines: make(chan string, 10000), done: make(chan struct{})}
	p.cmd.Env = append(append(os.Environ(), "NOTIFY_SOCKET=", "TERN_BOOTED="), env...)
	r, w := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s := bufio.NewScanner(r)
		s.Buffer(make([]byte, 1<<20), 1<<20)
		for s.Scan() {
			p.mu.Lock()
			p.log.WriteString(s.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- s.Text():
			default:
			}
		}
		close(p.lines)
	}()
	go func() {
		p.err = p.cmd.Wait()
		w.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s log:\n%s", filepath.Base(name), p.output())
		}
	})
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// stop ends the process with SIGTERM, as systemd does.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(wait):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// expect reads log lines until one matches re, and returns its submatches.
func (p *proc) expect(t *testing.T, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(wait)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("the process ended (%v) before saying %q", p.err, re)
			}
			if m := rx.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-deadline:
			t.Fatalf("nothing matching %q after %v", re, wait)
		}
	}
}

// started waits for "ternd started" and returns the version it names.
func (p *proc) started(t *testing.T) string {
	t.Helper()
	return p.expect(t, `msg="ternd started" version="ternd (\S+)`)[1]
}

func writeConfig(t *testing.T, path string, lines ...string) string {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
