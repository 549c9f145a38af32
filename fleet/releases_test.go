package fleet_test

import (
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/modfile"
	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/runtime/store"
	"github.com/tern-iot/tern/runtime/store/backend"
	"github.com/tern-iot/tern/sdk/abi"
)

// Code: the smallest module, and others that differ from it.
var (
	codeA = []byte("\x00asm\x01\x00\x00\x00")
	codeB = modfile.AppendSection(codeA, "b", []byte{1})
)

func named(t *testing.T, name string) []byte {
	t.Helper()
	w, err := modfile.WithManifest(codeA, abi.Manifest{Name: name, Version: "1.0.0", ABI: abi.ABIVersion})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func rel(module string, version uint64, code []byte) fleet.ReleaseEnvelope {
	env := fleet.NewRelease(module, version, code)
	env.SetTopics(fleet.Topics{Fleet: "demo"})
	return env
}

// tried runs a release through check and accept, as ternd does.
func tried(t *testing.T, r *fleet.Releases, env fleet.ReleaseEnvelope) {
	t.Helper()
	if fresh, err := r.Check(env); err != nil || !fresh {
		t.Fatalf("%s version %d: fresh %v, %v", env.Module, env.Version, fresh, err)
	}
	if err := r.Accept(env.Module, env.Version); err != nil {
		t.Fatal(err)
	}
}

// Which releases ternd installs, refuses (with what message) or ignores
// quietly, against what it holds, across restarts.
func TestReleasesCheck(t *testing.T) {
	st, err := backend.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := newReleases(t, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	tried(t, r, rel("relay", 5, codeA))
	restarted, err := newReleases(t, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range map[string]*fleet.Releases{"running": r, "after a restart": restarted} {
		for _, tc := range []struct {
			name  string
			env   fleet.ReleaseEnvelope
			fresh bool
			want  string // in the refusal; "" for none
		}{
			{"the release held, again", rel("relay", 5, codeA), false, ""},
			{"its version with other code", rel("relay", 5, codeB), false,
				"module relay release version 5 refused: version 5 is already installed with other code (sha256 93a44bbb96c7…; this release's is "},
			{"older", rel("relay", 4, codeB), false, "older than the version 5 accepted"},
			{"code named otherwise", rel("relay", 6, named(t, "evil")), false,
				`module relay release version 6 refused: the code calls itself "evil" (its manifest), but it came on the topic of module relay, whose grants it would run with; release it as --module evil, or build it named relay`},
			{"code named so", rel("relay", 6, named(t, "relay")), true, ""},
			{"newer", rel("relay", 6, codeB), true, ""},
			{"the largest version", rel("relay", fleet.MaxVersion, codeB), true, ""},
			{"another module", rel("heater", 1, codeB), true, ""},
		} {
			fresh, err := r.Check(tc.env)
			if fresh != tc.fresh || (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: fresh %v, %v; want fresh %v and a refusal saying %q", tc.name, fresh, err, tc.fresh, tc.want)
			}
		}
	}
}

// A release is checked against the trust store before anything else.
func TestReleasesCheckSignature(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	st, _ := backend.Open(t.TempDir())
	defer st.Close()
	r, _ := newReleases(t, st, signing.NewTrust(pub))
	env := rel("relay", 1, codeA)
	if _, err := r.Check(env); err == nil || !strings.Contains(err.Error(), "tern release --key") {
		t.Errorf("unsigned: %v", err)
	}
	env.Sign(priv)
	if fresh, err := r.Check(env); !fresh || err != nil {
		t.Errorf("signed: %v %v", fresh, err)
	}
}

// Versions stored by a ternd before this one: a version without its
// code's hash (or with the hash of another version, left behind when an
// older ternd ran after this one, as after an agent rollback) still orders
// releases and its redelivery stays quiet; a version above the ceiling,
// which no release could follow, lets the next release in, and that one
// orders them again. And what this one stores, an older one reads.
func TestReleasesLegacyStore(t *testing.T) {
	// The keys are the store's layout, which ternds of every version read.
	keyReleases, keyReleaseCode := []byte("fleet/releases"), []byte("fleet/release-code")
	st, _ := backend.Open(t.TempDir())
	defer st.Close()
	if err := st.Put(keyReleases, []byte(`{"relay":5,"heater":18446744073709551615}`)); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(keyReleaseCode, []byte(`{"relay":{"version":4,"sha256":"93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476"}}`)); err != nil {
		t.Fatal(err)
	}
	r, err := newReleases(t, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fresh, err := r.Check(rel("relay", 5, codeB)); fresh || err != nil {
		t.Errorf("version 5 again, code unknown: %v %v; want a quiet redelivery", fresh, err)
	}
	if _, err := r.Check(rel("relay", 4, codeB)); err == nil || !strings.Contains(err.Error(), "older than the version 5") {
		t.Errorf("older: %v", err)
	}
	tried(t, r, rel("heater", 3, codeA))
	if _, err := r.Check(rel("heater", 2, codeA)); err == nil || !strings.Contains(err.Error(), "older than the version 3") {
		t.Errorf("after the release that followed a version above the ceiling: %v", err)
	}
	if _, err := r.Check(rel("heater", 3, codeB)); err == nil || !strings.Contains(err.Error(), "already installed with other code") {
		t.Errorf("same version, other code: %v", err)
	}
	b, err := st.Get(keyReleases)
	var versions map[string]uint64 // what every ternd reads
	if err != nil || json.Unmarshal(b, &versions) != nil || versions["heater"] != 3 || versions["relay"] != 5 {
		t.Errorf("stored versions %s (%v): want {heater: 3, relay: 5} in the layout older ternds read", b, err)
	}
}

// newReleases is fleet.NewReleases with ternd's code check.
func newReleases(t *testing.T, st store.Store, trust signing.Trust) (*fleet.Releases, error) {
	t.Helper()
	r, err := fleet.NewReleases(st, trust)
	if r != nil {
		r.CheckCode = func(env fleet.ReleaseEnvelope) error { return modfile.NamedAs(env.Wasm, env.Module) }
	}
	return r, err
}
