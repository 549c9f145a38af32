package daemon_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/runtime"
)

// Through a real broker, a device with trusted keys refuses forged,
// unsigned, older, replayed and misaddressed targets, targets made for
// another fleet or topic prefix and versions above the ceiling, each with
// a target.refused event that says why, and keeps pursuing the target it
// holds; a good target after them is applied.
func TestTargetRefusals(t *testing.T) {
	forEachBroker(t, func(t *testing.T, url string) {
		k := newKeys(t)
		v := watchFleet(t, url)
		newTernd(t, url, k.pub, evilModule(t, k))

		v.push(t, 5, `{"fixed":{"a":true}}`, k.trusted)
		v.state(t, "target 5 reached", func(s fleet.StateReport) bool { return s.Converged && s.TargetVersion == 5 })
		topic := fleet.Topics{Fleet: "rel"}.DeviceTarget("pi-001")
		// signedFor is an envelope for the fleet and prefix of topics,
		// signed for scope ("stranger": by the stranger; "": unsigned).
		signedFor := func(topics fleet.Topics, version uint64, target, scope string) []byte {
			env := fleet.TargetEnvelope{Format: fleet.Format, Version: version, Target: json.RawMessage(target)}
			env.SetTopics(topics)
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
		envelope := func(version uint64, target, scope string) []byte {
			return signedFor(relTopics, version, target, scope)
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
			{"signed for another device", envelope(9, `{"fixed":{"b":true}}`, fleet.DeviceScope("pi-002")), "was signed for device/pi-002 but arrived on the topic of device/pi-001"},
			{"version 5 with other content", envelope(5, `{"fixed":{"b":true}}`, fleet.DeviceScope("pi-001")), "version 5"},
			{"signed for another fleet", signedFor(fleet.Topics{Fleet: "prod"}, 11, `{"fixed":{"b":true}}`, fleet.DeviceScope("pi-001")),
				`target envelope version 11 was made for fleet "prod" with topic prefix "tern", not for fleet "rel" with prefix "tern": what is signed for one fleet is not valid in another; sign it for fleet rel with tern push (or tern sign) --fleet rel`},
			{"signed for another prefix", signedFor(fleet.Topics{Prefix: "acme", Fleet: "rel"}, 11, `{"fixed":{"b":true}}`, fleet.DeviceScope("pi-001")),
				`made for fleet "rel" with topic prefix "acme"`},
			{"fleet rewritten after signing", bytes.Replace(signedFor(fleet.Topics{Fleet: "prod"}, 11, `{"fixed":{"b":true}}`, fleet.DeviceScope("pi-001")),
				[]byte(`"fleet":"prod"`), []byte(`"fleet":"rel"`), 1), "signature does not match"},
			{"version above the ceiling", bytes.Replace(envelope(12, `{"fixed":{"b":true}}`, fleet.DeviceScope("pi-001")),
				[]byte(`"version":12`), []byte(`"version":9007199254740992`), 1), "above the largest version, 9007199254740991"},
			{"format 1", []byte(`{"format":1,"version":13,"target":{"fixed":{"b":true}}}`), "no longer reads"},
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

// Through a real broker: a target pushed at the largest version locks out
// every later push, until a signed rebase takes the device back; the
// runaway envelope, replayed, is refused from then on.
func TestRunawayVersionIsTakenBack(t *testing.T) {
	forEachBroker(t, func(t *testing.T, url string) {
		k := newKeys(t)
		v := watchFleet(t, url)
		newTernd(t, url, k.pub, evilModule(t, k))
		topic := relTopics.DeviceTarget("pi-001")
		signed := func(version, replaces uint64, target string) []byte {
			env := fleet.TargetEnvelope{Format: fleet.Format, Version: version, Replaces: replaces, Target: json.RawMessage(target)}
			env.SetTopics(relTopics)
			if err := env.Sign(fleet.DeviceScope("pi-001"), k.trusted); err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(env)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		runaway := signed(fleet.MaxVersion, 0, `{"fixed":{"a":true}}`)
		v.publishRaw(t, topic, runaway)
		v.state(t, "the runaway target reached", func(s fleet.StateReport) bool { return s.Converged && s.TargetVersion == fleet.MaxVersion })
		v.publishRaw(t, topic, signed(1800000000000, 0, `{"fixed":{"b":true}}`))
		v.event(t, runtime.EventTargetRefused, "push a version above 9007199254740991")

		v.publishRaw(t, topic, signed(1800000000001, fleet.MaxVersion, `{"fixed":{"b":true}}`))
		v.event(t, runtime.EventTargetAccepted, "rebase from version 9007199254740991")
		v.state(t, "the rebased target reached", func(s fleet.StateReport) bool { return s.Converged && s.TargetVersion == 1800000000001 })

		v.publishRaw(t, topic, runaway)
		v.event(t, runtime.EventTargetRefused, "versions from 9007199254740991 up were retired")
		v.push(t, 1800000000002, `{"fixed":{"a":true}}`, k.trusted)
		v.state(t, "a push after the rebase reached", func(s fleet.StateReport) bool { return s.Converged && s.TargetVersion == 1800000000002 })
	})
}
