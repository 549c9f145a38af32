package firmware_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/firmware/update"
	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/internal/daemon"
	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/internal/version"
)

// TestSelfUpdate updates a running ternd over MQTT the way a fleet does,
// with real binaries (v1 packaged; v2, v3 released), the embedded broker
// and the test playing systemd (Restart=on-failure: it starts the packaged
// binary again when ternd exits with 75):
//
//  1. a release signed by an unknown key is refused; v1 keeps running;
//  2. v2, signed: received, staged, swapped, restarted into, committed;
//  3. v3 while the device holds a target nothing can meet: v3 does not
//     become healthy within its time, is rolled back, and v2 runs again.
func TestSelfUpdate(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("ternd runs on Linux")
	}
	arch := version.Arch()
	v1 := ternd(t, runtime.GOARCH, "", "v1-test")
	bins := map[string][]byte{}
	for _, v := range []string{"v2-test", "v3-test"} {
		b, err := os.ReadFile(ternd(t, runtime.GOARCH, "", v))
		if err != nil {
			t.Fatal(err)
		}
		bins[v] = b
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	url := fleettest.Embedded(t)
	topics := fleet.Topics{Fleet: "demo"}

	root := t.TempDir()
	packaged := filepath.Join(root, "usr/bin/ternd")
	copyFile(t, v1, packaged)
	data := filepath.Join(root, "var/lib/tern")
	cfg := writeConfig(t, filepath.Join(root, "etc/tern/ternd.yaml"),
		"device: pi-upd", "fleet: demo", "board: sim", "broker: "+url, "data_dir: "+data,
		"update_health_timeout: 4s", "log_level: debug",
		`trusted_keys: ["`+signing.FormatPublic(pub)+`"]`)

	op, err := fleet.DialOperator(t.Context(), fleet.OperatorOptions{Broker: url, Topics: topics, ConnectTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	events, err := op.WatchEvents(t.Context(), "pi-upd")
	if err != nil {
		t.Fatal(err)
	}
	expectEvent := func(kind, says string) fleet.EventReport {
		t.Helper()
		deadline := time.After(wait)
		for {
			select {
			case e := <-events:
				if string(e.Kind) == kind && strings.Contains(e.Message, says) {
					t.Logf("event %s: %s", e.Kind, e.Message)
					return e
				}
			case <-deadline:
				t.Fatalf("no %s event saying %q after %v", kind, says, wait)
			}
		}
	}
	release := func(v uint64, agentVersion string, key ed25519.PrivateKey) time.Time {
		t.Helper()
		r, err := fleet.NewAgentRelease(arch, v, bins[agentVersion])
		if err != nil {
			t.Fatal(err)
		}
		r.AgentVersion = agentVersion
		r.SetTopics(topics)
		r.Sign(key)
		t.Logf("release %d: %s, %d bytes, %d compressed", v, agentVersion, r.Size, len(r.Gzip))
		if err := op.PushAgentRelease(t.Context(), r); err != nil {
			t.Fatal(err)
		}
		return time.Now()
	}
	// restarted waits for p to exit with ExitRestart and starts the
	// packaged binary again, as systemd does.
	restarted := func(p *proc) *proc {
		t.Helper()
		select {
		case <-p.done:
		case <-time.After(wait):
			t.Fatalf("ternd did not exit to restart")
		}
		var ee *exec.ExitError
		if !asExit(p.err, &ee) || ee.ExitCode() != daemon.ExitRestart {
			t.Fatalf("ternd exited with %v, want exit code %d", p.err, daemon.ExitRestart)
		}
		return start(t, packaged, "run", "--config", cfg)
	}

	p := start(t, packaged, "run", "--config", cfg)
	if v := p.started(t); v != "v1-test" {
		t.Fatalf("the packaged binary says %s", v)
	}
	p.expect(t, "fleet: connected to broker")

	// 1. Bad signature.
	release(1, "v2-test", stranger)
	expectEvent("agent.update.received", "release 1")
	expectEvent("agent.update.refused", "does not trust")

	// 2. A good update.
	t0 := release(2, "v2-test", priv)
	expectEvent("agent.update.staged", "release 2")
	// The swapped event may wait in the outbox until the new binary
	// runs: ternd exits right after the swap, and events are not
	// flushed on the way out (fleet.Device.stop).
	p = restarted(p)
	expectEvent("agent.update.swapped", "release 2")
	if v := p.started(t); v != "v2-test" {
		t.Fatalf("after the update, %s runs; want v2-test", v)
	}
	expectEvent("agent.update.committed", "release 2")
	t.Logf("good update: %v from the release published to committed", time.Since(t0).Round(time.Millisecond))
	st, _ := update.Dir{Path: filepath.Join(data, "agent")}.Load()
	if st.Phase != update.PhaseCommitted || st.Version != 2 {
		t.Errorf("state after the good update: %+v", st)
	}

	// 3. An update that fails its health check.
	target := fleet.TargetEnvelope{Format: fleet.Format, Version: 1, Target: json.RawMessage(`{"relays":{"heater":true}}`)}
	target.SetTopics(topics)
	if err := target.Sign(fleet.DeviceScope("pi-upd"), priv); err != nil {
		t.Fatal(err)
	}
	if err := op.PushTarget(t.Context(), "pi-upd", target); err != nil {
		t.Fatal(err)
	}
	expectEvent("plan.failed", "")
	t0 = release(3, "v3-test", priv)
	p = restarted(p)
	if v := p.started(t); v != "v3-test" {
		t.Fatalf("after the swap, %s runs; want v3-test on trial", v)
	}
	p = restarted(p) // rolled back
	if v := p.started(t); v != "v2-test" {
		t.Fatalf("after the rollback, %s runs; want v2-test", v)
	}
	// The outbox keeps the events' order, whichever binary sends them.
	expectEvent("agent.update.swapped", "(previous: "+filepath.Join(data, "agent", "ternd-2")+")")
	expectEvent("agent.update.rolled_back", "not healthy within 4s")
	t.Logf("failed update: %v from the release published to the previous binary running again (health timeout 4s)", time.Since(t0).Round(time.Millisecond))
	st, _ = update.Dir{Path: filepath.Join(data, "agent")}.Load()
	if st.Phase != update.PhaseRolledBack || st.Version != 3 || st.Tried != 3 {
		t.Errorf("state after the rollback: %+v", st)
	}
	// The retained release 3 comes again on every reconnect; it is not
	// tried again.
	p.stop()
	p = start(t, packaged, "run", "--config", cfg)
	if v := p.started(t); v != "v2-test" {
		t.Errorf("after a restart, %s runs; want v2-test", v)
	}
	p.expect(t, `agent release already tried.*version=3`)
}

func asExit(err error, ee **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	*ee = e
	return ok
}
