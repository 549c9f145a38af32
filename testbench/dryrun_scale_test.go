package testbench_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tern-iot/tern/fleet"
)

// TestScaleDryRun: TERN_SCALE_DRYRUN agents (make testbench: 1000), whole
// ternds as in TestScale (its shards, its economies, the embedded broker
// in its own process), answer a fleet dry-run of their group: it reports
// the time from the request to the last answer, twice (the first preview
// of each agent, then a second), and the CPU of the agents' processes
// and the broker meanwhile. Every agent must answer, with the plan, and
// hold no target after it. Unset, the test does not run; set, anything
// missing (wat2wasm) fails it.
func TestScaleDryRun(t *testing.T) {
	gate := os.Getenv("TERN_SCALE_DRYRUN")
	if gate == "" {
		t.Skip("set TERN_SCALE_DRYRUN=1000 (make testbench does) to measure a dry-run of 1,000 agents")
	}
	n, err := strconv.Atoi(gate)
	if err != nil || n < 1 {
		t.Fatalf("TERN_SCALE_DRYRUN=%q: want a number of agents", gate)
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
	broker, brokerPID := startTernBrokerProcess(t)
	topics := fleet.Topics{Fleet: "scale"}

	var mu sync.Mutex
	reported := map[string]bool{}
	allIn := make(chan struct{})
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
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher subscribe: %v", tok.Error())
	}

	startAt := time.Now()
	var shardPIDs []int
	for first := 0; first < n; first += scaleShard {
		cmd := exec.Command(os.Args[0], "-test.run=^TestScaleShard$", "-test.timeout=0")
		cmd.Env = append(os.Environ(),
			fmt.Sprintf("TERN_SCALE_SHARD=%d:%d", first, min(scaleShard, n-first)),
			"TERN_SCALE_URLS="+broker, "TERN_SCALE_MODULE="+mod, "TERN_SCALE_DIR="+dir)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		stdin, err := cmd.StdinPipe() // closed: the shard stops its agents and exits
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		shardPIDs = append(shardPIDs, cmd.Process.Pid)
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
	select {
	case <-allIn:
	case <-time.After(5*time.Minute + time.Duration(n)*10*time.Millisecond):
		mu.Lock()
		t.Fatalf("only %d of %d agents reported after %v", len(reported), n, time.Since(startAt).Round(time.Second))
	}
	t.Logf("%d agents up and reporting in %v", n, time.Since(startAt).Round(time.Millisecond))

	op := dialScaleOp(t, broker, topics)
	for round := 1; round <= 2; round++ {
		brokerCPU0, agentsCPU0 := cpuOf(t, []int{brokerPID}), cpuOf(t, shardPIDs)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute+time.Duration(n)*100*time.Millisecond)
		req := fleet.DryRunRequest{Format: fleet.Format, ID: fleet.NewDryRunID(time.Now()), Version: 7, Target: []byte(`{"relays":{"heater":true,"fan":true}}`)}
		at := time.Now()
		answers, err := op.DryRun(ctx, fleet.GroupScope("all"), req)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		var first time.Duration
		for len(got) < n {
			select {
			case a, ok := <-answers:
				if !ok {
					t.Fatalf("round %d: the answers stopped at %d of %d", round, len(got), n)
				}
				if first == 0 {
					first = time.Since(at)
				}
				if a.Outcome != fleet.DryRunChange || len(a.Tasks) != 2 || a.TargetVersion != 0 {
					t.Fatalf("round %d: %s answered %s, %d tasks, holding version %d (%s); want the 2-task plan, holding nothing", round, a.Device, a.Outcome, len(a.Tasks), a.TargetVersion, a.Reason)
				}
				got[a.Device] = true
			case <-ctx.Done():
				t.Fatalf("round %d: %d of %d agents answered in %v", round, len(got), n, time.Since(at).Round(time.Millisecond))
			}
		}
		took := time.Since(at)
		cancel()
		brokerCPU, agentsCPU := cpuOf(t, []int{brokerPID})-brokerCPU0, cpuOf(t, shardPIDs)-agentsCPU0
		t.Logf("dry-run %d of %d agents: every answer in %v (the first after %v); CPU: agents %.2f s, broker %.2f s",
			round, n, took.Round(time.Millisecond), first.Round(time.Millisecond), agentsCPU, brokerCPU)
	}
}
