package daemon_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/modfile"
	"github.com/tern-iot/tern/internal/wat"
	"github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/sdk/abi"
)

// Through a real broker (Mosquitto, and the embedded one), ternd refuses
// releases made for another fleet or topic prefix, with a version above
// the ceiling, with the version it holds but other code, or whose code
// names another module, each with a module.refused event that says what
// was wrong and what to do, and keeps running what it has. The release it
// holds, delivered again, raises no event.
func TestReleaseRefusals(t *testing.T) {
	forEachBroker(t, func(t *testing.T, url string) {
		k := newKeys(t)
		v := watchFleet(t, url)
		newTernd(t, url, k.pub, evilModule(t, k))
		v.running(t, "evil", "2.0.0")
		held := release("evil", 5, signedModule(t, "evil-4.0.0", k.trusted), k.trusted)
		v.release(t, held)
		v.event(t, runtime.EventModuleInstalled, "version 4.0.0")
		v.running(t, "evil", "4.0.0")
		topic := relTopics.Module("evil")

		other := signedModule(t, "evil-1.0.0", k.trusted) // other code, well signed
		forFleet := func(topics fleet.Topics) fleet.ReleaseEnvelope {
			env := fleet.NewRelease("evil", 6, other)
			env.SetTopics(topics)
			env.Sign(k.trusted)
			return env
		}
		rewritten := forFleet(fleet.Topics{Fleet: "prod"})
		rewritten.Fleet = "rel" // to pass the fleet check: the signature no longer holds
		// Code whose manifest section names another module than its topic.
		relay, err := modfile.WithManifest(wat.AssembleFile(t, filepath.Join("testdata", "evil-4.0.0.wat")),
			abi.Manifest{Name: "relay", Version: "4.0.0", ABI: abi.ABIVersion})
		if err != nil {
			t.Fatal(err)
		}
		if relay, err = modfile.Sign(relay, k.trusted); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name    string
			payload []byte
			want    string
		}{
			{"wrong fleet", encode(t, forFleet(fleet.Topics{Fleet: "prod"}), nil),
				`module release of evil version 6 was made for fleet "prod" with topic prefix "tern", not for fleet "rel" with prefix "tern": what is signed for one fleet is not valid in another; sign it for fleet rel with tern release --module evil --fleet rel`},
			{"wrong prefix", encode(t, forFleet(fleet.Topics{Prefix: "acme/tern", Fleet: "rel"}), nil),
				`made for fleet "rel" with topic prefix "acme/tern", not for fleet "rel" with prefix "tern"`},
			{"fleet rewritten after signing", encode(t, rewritten, nil), "signature does not match"},
			{"format 1", encode(t, forFleet(relTopics), map[string]any{"format": 1}),
				"format 1, which this build no longer reads: its signature does not cover the fleet and topic prefix"},
			{"version above the ceiling", encode(t, forFleet(relTopics), map[string]any{"version": uint64(fleet.MaxVersion + 1)}),
				"has version 9007199254740992, above the largest version, 9007199254740991"},
			{"version 2^64-1", encode(t, forFleet(relTopics), map[string]any{"version": uint64(1<<64 - 1)}), "above the largest version"},
			{"same version, other code", encode(t, release("evil", 5, other, k.trusted), nil),
				"version 5 is already installed with other code (sha256 " + held.SHA256[:12] + "…; this release's is "},
			{"manifest names another module", encode(t, release("evil", 7, relay, k.trusted), nil),
				`the code calls itself "relay" (its manifest), but it came on the topic of module evil, whose grants it would run with; release it as --module relay`},
		} {
			v.publishRaw(t, topic, tc.payload)
			e := v.event(t, runtime.EventModuleRefused, tc.want)
			t.Logf("%s: %s", tc.name, e.Message)
		}
		v.running(t, "evil", "4.0.0")

		// Code with no manifest section is named by what it describes:
		// the runtime refuses it after loading it without running a job.
		text, err := os.ReadFile(filepath.Join("testdata", "evil-4.0.0.wat"))
		if err != nil {
			t.Fatal(err)
		}
		liar, err := modfile.Sign(wat.Assemble(t, strings.Replace(string(text), `\"name\":\"evil\"`, `\"name\":\"liar\"`, 1)), k.trusted)
		if err != nil {
			t.Fatal(err)
		}
		liarRelease := release("evil", 8, liar, k.trusted)
		v.release(t, liarRelease)
		v.event(t, runtime.EventModuleRefused, `calls itself "liar"`)

		// The release held (tried last), delivered again as after a
		// reconnect, is no news: the next refusal is the one after it.
		v.publishRaw(t, topic, encode(t, liarRelease, nil))
		v.release(t, release("evil", 9, other, k.stranger))
		if e := v.event(t, runtime.EventModuleRefused, ""); !strings.Contains(e.Message, "does not trust") {
			t.Errorf("after the held release came again, a refusal %q; want none before the next release's", e.Message)
		}
		v.running(t, "evil", "4.0.0")
	})
}

// encode is env as JSON, with the fields in edit replaced.
func encode(t *testing.T, env fleet.ReleaseEnvelope, edit map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	if edit == nil {
		return b
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range edit {
		m[k] = v
	}
	if b, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	return b
}
