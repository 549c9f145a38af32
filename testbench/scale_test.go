package testbench_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tern-iot/tern/boards"
	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/internal/daemon"
)

// TestScale: TERN_SCALE_AGENTS agents (make testbench: 1000), each a whole
// ternd (daemon.Run: store, agent, Wasm host, fleet device with its own
// MQTT connection) run in this process, against one broker run as a
// separate process, converge on a group target: the embedded broker
// (`tern broker --data DIR`, built from ./cmd/tern) or, with
// TERN_SCALE_BROKER=mosquitto, Mosquitto. It reports the time from the
// push to the last agent converged, and the CPU and memory of the broker
// and of the agents' process meanwhile. Unset, the test does not run;
// set, anything missing (mosquitto, wat2wasm) fails it.
//
// The economies that make 1,000 fit on 2 cores (bench/scale/README.md):
// the bolt store instead of Badger, one compilation cache directory for
// all, and a small module (testdata/lite.wat, 664 bytes) instead of the Go
// relay (3.4 MB, a Go runtime per instance).
func TestScale(t *testing.T) {
	gate := os.Getenv("TERN_SCALE_AGENTS")
	if gate == "" {
		t.Skip("set TERN_SCALE_AGENTS=1000 (make testbench does) to run the scale scenario")
	}
	n, err := strconv.Atoi(gate)
	if err != nil || n < 1 {
		t.Fatalf("TERN_SCALE_AGENTS=%q: want a number of agents", gate)
	}
	wat2wasm, err := exec.LookPath("wat2wasm")
	if err != nil {
		t.Fatal("wat2wasm not found: apt-get install wabt")
	}
	dir := t.TempDir()
	mod := filepath.Join(dir, "lite.wasm")
	if out, err := exec.Command(wat2wasm, "--enable-all", "testdata/lite.wat", "-o", mod).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s", err, out)
	}
	brokerName := os.Getenv("TERN_SCALE_BROKER")
	var broker string
	var brokerPID int
	switch brokerName {
	case "", "embedded":
		brokerName = "embedded, tern broker"
		broker, brokerPID = startTernBrokerProcess(t)
	case "mosquitto":
		broker, brokerPID = startMosquittoProcess(t)
	default:
		t.Fatalf("TERN_SCALE_BROKER=%q: want embedded (the default) or mosquitto", brokerName)
	}
	topics := fleet.Topics{Fleet: "scale"}

	// The watcher: every state report of the fleet.
	var mu sync.Mutex
	reported := map[string]bool{}
	converged := map[string]time.Time{}
	const version = 7
	allIn, allDone := make(chan struct{}), make(chan struct{})
	watch := paho.NewClient(paho.NewClientOptions().AddBroker(broker).SetClientID("scale-watch").SetCleanSession(true))
	if tok := watch.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher: %v", tok.Error())
	}
	defer watch.Disconnect(0)
	tok := watch.Subscribe("tern/scale/devices/+/state", 0, func(_ paho.Client, m paho.Message) {
		s, err := fleet.ParseStateReport(m.Payload())
		if err != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !reported[s.Device] {
			reported[s.Device] = true
			if len(reported) == n {
				close(allIn)
			}
		}
		if _, ok := converged[s.Device]; !ok && s.Converged && s.TargetVersion == version {
			converged[s.Device] = time.Now()
			if len(converged) == n {
				close(allDone)
			}
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher subscribe: %v", tok.Error())
	}

	board, err := boards.Lookup("sim")
	if err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(dir, "cache")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var failed atomic.Int32
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: scaleLogLevel()}))
	startAt := time.Now()
	for i := range n {
		cfg := daemon.Config{
			Device: fmt.Sprintf("dev-%04d", i), Fleet: "scale", Broker: broker, Board: "sim",
			DataDir: filepath.Join(dir, "agents", strconv.Itoa(i)), CacheDir: cache, Store: scaleStore(),
			Groups:  []string{"all"},
			Modules: []daemon.ModuleConfig{{Name: "lite", Path: mod}},
		}
		wg.Go(func() {
			if err := daemon.Run(ctx, cfg, &daemon.Hardware{GPIO: sim.NewGPIO(board.Lines()...)}, log); err != nil {
				failed.Add(1)
				t.Errorf("agent %s: %v", cfg.Device, err)
			}
		})
		if i%50 == 49 {
			time.Sleep(200 * time.Millisecond) // let the broker take the connections in batches
		}
	}
	defer func() { cancel(); wg.Wait() }()
	select {
	case <-allIn:
	case <-time.After(5 * time.Minute):
		mu.Lock()
		t.Fatalf("only %d of %d agents reported after 5 min (%d failed to start)", len(reported), n, failed.Load())
	}
	upIn := time.Since(startAt)
	time.Sleep(2 * time.Second) // let the start settle before measuring
	brokerCPU0, agentsCPU0 := cpuTicks(t, brokerPID), cpuTicks(t, os.Getpid())

	op := dialScaleOp(t, broker, topics)
	pushAt := time.Now()
	pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer pcancel()
	if err := op.PushGroupTarget(pctx, "all", fleet.TargetEnvelope{Format: fleet.Format, Version: version, Target: []byte(`{"relays":{"heater":true,"fan":true}}`)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-allDone:
	case <-time.After(30*time.Second + time.Duration(n)*100*time.Millisecond):
		mu.Lock()
		t.Fatalf("only %d of %d agents converged %v after the push", len(converged), n, time.Since(pushAt).Round(time.Second))
	}
	took := time.Since(pushAt)
	brokerCPU, agentsCPU := cpuTicks(t, brokerPID)-brokerCPU0, cpuTicks(t, os.Getpid())-agentsCPU0
	t.Logf("%d agents up and reporting in %v", n, upIn.Round(time.Millisecond))
	t.Logf("group push to all %d converged: %v", n, took.Round(time.Millisecond))
	t.Logf("broker (%s, pid %d): CPU %.2f s over the convergence (%.0f%% of a core), RSS %s, peak %s",
		brokerName, brokerPID, brokerCPU, 100*brokerCPU/took.Seconds(), procStatus(t, brokerPID, "VmRSS"), procStatus(t, brokerPID, "VmHWM"))
	t.Logf("agents (this process): CPU %.2f s over the convergence (%.0f%% of a core), RSS %s, peak %s (%s per agent at peak)",
		agentsCPU, 100*agentsCPU/took.Seconds(), procStatus(t, os.Getpid(), "VmRSS"), procStatus(t, os.Getpid(), "VmHWM"),
		perAgent(procStatus(t, os.Getpid(), "VmHWM"), n))
}

// startMosquittoProcess runs mosquitto as its own process (so its CPU and
// memory can be read from /proc) and returns its URL and pid.
func startMosquittoProcess(t *testing.T) (string, int) {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		bin = "/usr/sbin/mosquitto"
		if _, err := os.Stat(bin); err != nil {
			t.Fatal("mosquitto not found: apt-get install mosquitto")
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	body := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_connections -1\nlog_dest stderr\nlog_type error\n", port)
	if os.Geteuid() == 0 {
		body += "user root\n"
	}
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("mosquitto does not accept connections")
		}
	}
	return "tcp://" + addr, cmd.Process.Pid
}

// startTernBrokerProcess builds tern and runs `tern broker` as its own
// process, with a data directory as a fleet would, and returns its URL
// and pid.
func startTernBrokerProcess(t *testing.T) (string, int) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "tern")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/tern").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/tern: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "broker", "--listen", addr, "--data", filepath.Join(dir, "data"))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("tern broker does not accept connections")
		}
	}
	return "tcp://" + addr, cmd.Process.Pid
}

func dialScaleOp(t *testing.T, url string, topics fleet.Topics) *fleet.Operator {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	op, err := fleet.DialOperator(ctx, fleet.OperatorOptions{Broker: url, Topics: topics})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(op.Close)
	return op
}

// cpuTicks is a process's user + system CPU time in seconds, from
// /proc/PID/stat (fields 14 and 15, in clock ticks of 1/100 s).
func cpuTicks(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command name (field 2) may hold spaces: count from its ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100
}

// procStatus is one field of /proc/PID/status, e.g. VmRSS: "123456 kB".
func procStatus(t *testing.T, pid int, field string) string {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), field+":"); ok {
			kb, _ := strconv.Atoi(strings.Fields(v)[0])
			return fmt.Sprintf("%.1f MiB", float64(kb)/1024)
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return ""
}

func perAgent(mib string, n int) string {
	v, _ := strconv.ParseFloat(strings.Fields(mib)[0], 64)
	return fmt.Sprintf("%.2f MiB", v/float64(n))
}

// scaleLogLevel is the agents' log level: error, or TERN_SCALE_LOG.
func scaleLogLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("TERN_SCALE_LOG"))); err != nil {
		return slog.LevelError
	}
	return l
}

// scaleStore is the agents' store backend: bolt, or TERN_SCALE_STORE (to
// measure the economy).
func scaleStore() string {
	if s := os.Getenv("TERN_SCALE_STORE"); s != "" {
		return s
	}
	return "bolt"
}
