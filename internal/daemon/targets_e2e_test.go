package daemon_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/daemon"
	"github.com/tern-iot/tern/runtime"
)

// Through a real broker, a device with trusted keys refuses forged,
// unsigned, older, replayed and misaddressed targets, each with a
// target.refused event that says why, and keeps pursuing the target it
// holds; a good target after them is applied.
func TestTargetRefusals(t *testing.T) {
	forEachBroker(t, func(t *testing.T, url string) {
		k := newKeys(t)
		path := filepath.Join(t.TempDir(), "evil.wasm")
		if err := os.WriteFile(path, signedModule(t, "evil-2.0.0", k.trusted), 0o644); err != nil {
			t.Fatal(err)
		}
		v := watchFleet(t, url)
		newTernd(t, url, k.pub, daemon.ModuleConfig{Name: "evil", Path: path})

		v.push(t, 5, `{"fixed":{"a":true}}`, k.trusted)
		v.state(t, "target 5 reached", func(s fleet.StateReport) bool { return s.Converged && s.TargetVersion == 5 })
		topic := fleet.Topics{Fleet: "rel"}.DeviceTarget("pi-001")
		envelope := func(version uint64, target, scope string) []byte {
			env := fleet.TargetEnvelope{Format: fleet.Format, Version: version, Target: json.RawMessage(target)}
			if scope != "" {
				priv := k.trusted
				if scope == "stranger" {
					priv, scope = k.stranger, fleet.DeviceScope("pi-001")
				}
				if err := env.Sign(scope, priv); err != nil {
					t.Fatal(err)
				}
			}
			b, err := json.Marshal(env)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		v5 := envelope(5, `{"fixed":{"a":true}}`, fleet.DeviceScope("pi-001"))
		for _, tc := range []struct {
			name    string
			payload []byte
			want    string
		}{
			{"forged", envelope(6, `{"fixed":{"b":true}}`, "stranger"), "does not trust"},
			{"unsigned", envelope(7, `{"fixed":{"b":true}}`, ""), "tern push --key"},
			{"older", envelope(4, `{"fixed":{"b":true}}`, fleet.DeviceScope("pi-001")), "older than the version 5"},
			{"signed for another device", envelope(9, `{"fixed":{"b":true}}`, fleet.DeviceScope("pi-002")), "signature"},
			{"version 5 with other content", envelope(5, `{"fixed":{"b":true}}`, fleet.DeviceScope("pi-001")), "version 5"},
		} {
			v.publishRaw(t, topic, tc.payload)
			e := v.event(t, runtime.EventTargetRefused, tc.want)
			t.Logf("%s: %s", tc.name, e.Message)
		}
		v.push(t, 10, `{"fixed":{"b":true}}`, k.trusted)
		v.state(t, "target 10 reached", func(s fleet.StateReport) bool { return s.Converged && s.TargetVersion == 10 })
		if got := string(v.last.State); !strings.Contains(got, `"b":true`) {
			t.Errorf("state at target 10: %s, want fixed/b set", got)
		}
		// A replay of the old, validly signed version 5 changes nothing.
		v.publishRaw(t, topic, v5)
		v.event(t, runtime.EventTargetRefused, "older than the version 10")
	})
}
