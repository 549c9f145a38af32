package firmware_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/internal/wasmbuild"
)

// TestQemuConverge runs the arm64 and armv7 ternd under qemu-user the way
// they run on a Raspberry Pi, end to end: it starts, opens its store,
// loads the relay module (WebAssembly, through wazero: compiled on arm64,
// interpreted on armv7) on the sim board, connects to a broker on loopback
// (the embedded one, in this process), receives a target and converges.
// It logs the time from the target's publication to the converged state
// report, and from the process start.
func TestQemuConverge(t *testing.T) {
	relay, err := wasmbuild.Cached("github.com/tern-iot/tern/plugins/relay")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range targets[:2] { // arm64, armv7
		t.Run(tc.name, func(t *testing.T) {
			qemu, err := exec.LookPath(tc.qemu)
			if err != nil {
				t.Fatalf("%s not found: apt-get install -y qemu-user-static", tc.qemu)
			}
			bin := ternd(t, tc.goarch, tc.goarm, "v1-test")
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "relay.wasm"), relay, 0o644); err != nil {
				t.Fatal(err)
			}
			url := fleettest.Embedded(t)
			device := "qemu-" + tc.name
			cfg := writeConfig(t, filepath.Join(dir, "ternd.yaml"),
				"device: "+device, "fleet: qemu", "broker: "+url, "board: sim", "data_dir: "+filepath.Join(dir, "data"),
				"modules:", "  - name: relay", "    path: relay.wasm", "    grants: {gpio: [GPIO17, GPIO27]}",
				"    config: {lines: {heater: GPIO17, fan: GPIO27}}")

			op, err := fleet.DialOperator(t.Context(), fleet.OperatorOptions{Broker: url, Topics: fleet.Topics{Fleet: "qemu"}, ConnectTimeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer op.Close()
			states, err := op.WatchStates(t.Context(), device)
			if err != nil {
				t.Fatal(err)
			}
			online, err := op.WatchOnline(t.Context(), device)
			if err != nil {
				t.Fatal(err)
			}

			t0 := time.Now()
			p := start(t, qemu, bin, "run", "--config", cfg)
			if v := p.started(t); v != "v1-test" {
				t.Errorf("ternd under %s says %s", tc.qemu, v)
			}
			p.expect(t, `fleet: connected to broker`)
			// online=true comes once the device subscribed to its target:
			// a target pushed before that could reach it only as a
			// retained message, which nats-server serves to a new
			// subscription a moment after it acknowledged it
			// (docs/mqtt.md, NATS).
			for seen := false; !seen; {
				select {
				case o := <-online:
					seen = o.Online
				case <-time.After(wait):
					t.Fatalf("%s connected but never said online=true within %v", device, wait)
				}
			}
			up := time.Since(t0)
			target := fleet.TargetEnvelope{Format: fleet.Format, Version: 1, Target: json.RawMessage(`{"relays":{"heater":true,"fan":false}}`)}
			t1 := time.Now()
			if err := op.PushTarget(t.Context(), device, target); err != nil {
				t.Fatal(err)
			}
			deadline := time.After(3 * wait)
			for {
				select {
				case s := <-states:
					if !s.Converged || s.TargetVersion != 1 {
						continue
					}
					var st struct {
						Relays map[string]bool `json:"relays"`
					}
					json.Unmarshal(s.State, &st)
					if !st.Relays["heater"] || st.Relays["fan"] {
						t.Fatalf("converged, but the sensed state is %s", s.State)
					}
					t.Logf("%s under qemu-user: started and connected in %v; converged %v after the target was published (%v after start)",
						tc.name, up.Round(time.Millisecond), time.Since(t1).Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
					return
				case <-deadline:
					t.Fatalf("not converged %v after the target was published", 3*wait)
				}
			}
		})
	}
}
