package testbench_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tern-iot/tern/boards"
	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/internal/daemon"
	"github.com/tern-iot/tern/testbench"
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
	var brokerPIDs []int
	var urls []string // the cluster's nodes; else the one broker
	switch brokerName {
	case "", "embedded":
		brokerName = "embedded, tern broker"
		var pid int
		broker, pid = startTernBrokerProcess(t)
		brokerPIDs = []int{pid}
	case "mosquitto":
		var pid int
		broker, pid = startMosquittoProcess(t)
		brokerPIDs = []int{pid}
	case "cluster":
		brokerName = "three-node NATS cluster, tern broker"
		c, err := testbench.StartCluster(context.Background(), testbench.ClusterOptions{Dir: filepath.Join(dir, "cluster")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		// The operator and the watcher on node 1; devices spread over
		// all three, a third of them on each as their first node.
		broker, brokerPIDs = c.URLs()[0], c.PIDs()
		urls = c.URLs()
	default:
		t.Fatalf("TERN_SCALE_BROKER=%q: want embedded (the default), mosquitto or cluster", brokerName)
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

	// The agents run in shard processes of this test binary (TestScaleShard),
	// up to scaleShard agents each: a process may hold 20,000 open files
	// on this machine, and an agent holds two (its connection, its store).
	if urls == nil {
		urls = []string{broker}
	}
	startAt := time.Now()
	var shards []*exec.Cmd
	for first := 0; first < n; first += scaleShard {
		cmd := exec.Command(os.Args[0], "-test.run=^TestScaleShard$", "-test.timeout=0")
		cmd.Env = append(os.Environ(),
			fmt.Sprintf("TERN_SCALE_SHARD=%d:%d", first, min(scaleShard, n-first)),
			"TERN_SCALE_URLS="+strings.Join(urls, ","),
			"TERN_SCALE_MODULE="+mod, "TERN_SCALE_DIR="+dir)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		stdin, err := cmd.StdinPipe() // closed: the shard stops its agents and exits
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		shards = append(shards, cmd)
		t.Cleanup(func() {
			stdin.Close()
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(time.Minute):
				cmd.Process.Kill()
				<-done
			}
		})
	}
	shardPIDs := make([]int, len(shards))
	for i, c := range shards {
		shardPIDs[i] = c.Process.Pid
	}
	select {
	case <-allIn:
	case <-time.After(5*time.Minute + time.Duration(n)*10*time.Millisecond):
		mu.Lock()
		t.Fatalf("only %d of %d agents reported after %v", len(reported), n, time.Since(startAt).Round(time.Second))
	}
	upIn := time.Since(startAt)
	time.Sleep(2 * time.Second) // let the start settle before measuring
	brokerCPU0, agentsCPU0 := cpuOf(t, brokerPIDs), cpuOf(t, shardPIDs)

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
	brokerCPU, agentsCPU := cpuOf(t, brokerPIDs)-brokerCPU0, cpuOf(t, shardPIDs)-agentsCPU0
	t.Logf("%d agents up and reporting in %v", n, upIn.Round(time.Millisecond))
	t.Logf("group push to all %d converged: %v", n, took.Round(time.Millisecond))
	t.Logf("broker (%s): CPU %.2f s over the convergence (%.0f%% of a core)", brokerName, brokerCPU, 100*brokerCPU/took.Seconds())
	for _, pid := range brokerPIDs {
		t.Logf("  broker process %d: RSS %s, peak %s", pid, procStatus(t, pid, "VmRSS"), procStatus(t, pid, "VmHWM"))
	}
	if nodes, err := os.ReadDir(filepath.Join(dir, "cluster")); err == nil {
		for _, n := range nodes {
			t.Logf("  node %s: %.1f MiB of JetStream data", n.Name(), float64(dirSize(filepath.Join(dir, "cluster", n.Name())))/(1<<20))
		}
	}
	t.Logf("agents (%d processes): CPU %.2f s over the convergence (%.0f%% of a core)", len(shardPIDs), agentsCPU, 100*agentsCPU/took.Seconds())
	var peak float64
	for _, pid := range shardPIDs {
		t.Logf("  agents' process %d: RSS %s, peak %s, %d open files", pid, procStatus(t, pid, "VmRSS"), procStatus(t, pid, "VmHWM"), openFiles(pid))
		peak += mib(procStatus(t, pid, "VmHWM"))
	}
	t.Logf("  agents' peak RSS together %.1f MiB, %.2f MiB per agent", peak, peak/float64(n))
}

// scaleShard is how many agents one shard process runs at most.
const scaleShard = 4000

// TestScaleShard is not a test of its own: TestScale runs it, in a process
// of its own, for each shard of its agents (TERN_SCALE_SHARD=first:count),
// and closes its stdin to stop it.
func TestScaleShard(t *testing.T) {
	shard := os.Getenv("TERN_SCALE_SHARD")
	if shard == "" {
		t.Skip("TestScale runs this in a process of its own")
	}
	var first, count int
	if _, err := fmt.Sscanf(shard, "%d:%d", &first, &count); err != nil {
		t.Fatalf("TERN_SCALE_SHARD=%q: %v", shard, err)
	}
	urls := strings.Split(os.Getenv("TERN_SCALE_URLS"), ",")
	dir, mod := os.Getenv("TERN_SCALE_DIR"), os.Getenv("TERN_SCALE_MODULE")
	board, err := boards.Lookup("sim")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: scaleLogLevel()}))
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	for i := first; i < first+count && ctx.Err() == nil; i++ {
		cfg := daemon.Config{
			Device: fmt.Sprintf("dev-%05d", i), Fleet: "scale", Board: "sim",
			DataDir: filepath.Join(dir, "agents", strconv.Itoa(i)), CacheDir: filepath.Join(dir, "cache"), Store: scaleStore(),
			Groups:  []string{"all"},
			Modules: []daemon.ModuleConfig{{Name: "lite", Path: mod}},
			// Thousands of agents starting at once on two cores: the
			// 664-byte module's instantiation once waited over the
			// default 10 s for a CPU.
			ModuleLimits: daemon.ModuleLimits{CallTimeout: daemon.Duration(2 * time.Minute)},
		}
		if len(urls) == 1 {
			cfg.Broker = urls[0]
		} else {
			// Spread over the nodes: each device connects to node
			// i mod 3 first and fails over to the next.
			cfg.Brokers = testbench.Rotate(urls, i)
		}
		wg.Go(func() {
			if err := daemon.Run(ctx, cfg, &daemon.Hardware{GPIO: sim.NewGPIO(board.Lines()...)}, log); err != nil {
				t.Errorf("agent %s: %v", cfg.Device, err)
			}
		})
		if i%50 == 49 {
			time.Sleep(200 * time.Millisecond) // let the broker take the connections in batches
		}
	}
	<-ctx.Done()
	wg.Wait()
}

// dirSize is the bytes of the files under dir.
func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// openFiles is how many files process pid has open.
func openFiles(pid int) int {
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(fds)
}

// mib is the number in "123.4 MiB".
func mib(s string) float64 {
	v, _ := strconv.ParseFloat(strings.Fields(s)[0], 64)
	return v
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

// cpuOf is cpuTicks summed over processes.
func cpuOf(t *testing.T, pids []int) float64 {
	t.Helper()
	var sum float64
	for _, pid := range pids {
		sum += cpuTicks(t, pid)
	}
	return sum
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
