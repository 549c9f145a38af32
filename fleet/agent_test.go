package fleet_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/internal/signing"
)

// fakeELF is an ELF header and n bytes that compress about as well as a
// Go binary does (random bytes do not compress at all; zeros too well).
func fakeELF(n int) []byte {
	b := make([]byte, n)
	rand.Read(b[:n/3])
	copy(b, "\x7fELF\x02\x01\x01")
	return b
}

func agentJSON(t *testing.T, r fleet.AgentRelease, edit func(m map[string]any)) []byte {
	t.Helper()
	b, _ := json.Marshal(r)
	var m map[string]any
	json.Unmarshal(b, &m)
	if edit != nil {
		edit(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAgentRelease(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	bin := fakeELF(1 << 20)
	r, err := fleet.NewAgentRelease("arm64", 7, bin)
	if err != nil {
		t.Fatal(err)
	}
	r.AgentVersion = "v0.9.0"
	r.SetTopics(topics)
	r.Sign(priv)
	if len(r.Gzip) >= len(bin) {
		t.Errorf("compressed %d bytes into %d", len(bin), len(r.Gzip))
	}
	got, err := fleet.ParseAgentRelease(agentJSON(t, r, nil))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Binary, bin) || got.Version != 7 || got.Arch != "arm64" || got.AgentVersion != "v0.9.0" {
		t.Fatalf("round trip changed the release: version %d arch %s, %d bytes", got.Version, got.Arch, len(got.Binary))
	}
	trust := signing.NewTrust(pub)
	if err := got.Verify(trust); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if err := got.Verify(signing.NewTrust()); !errors.Is(err, signing.ErrUnknownKey) {
		t.Errorf("Verify with no trusted keys: %v, want ErrUnknownKey (agent releases are never accepted unsigned)", err)
	}
	other := got
	other.Arch = "armv7" // a signature for arm64 does not cover armv7
	if err := other.Verify(trust); !errors.Is(err, signing.ErrBadSig) {
		t.Errorf("Verify of the release moved to armv7: %v, want ErrBadSig", err)
	}
	for _, edit := range []func(*fleet.AgentRelease){
		func(r *fleet.AgentRelease) { r.Fleet = "prod" },
		func(r *fleet.AgentRelease) { r.Prefix = "acme" },
	} {
		other = got
		edit(&other) // a signature for fleet demo, prefix tern, covers no other
		if err := other.Verify(trust); !errors.Is(err, signing.ErrBadSig) {
			t.Errorf("Verify of the release moved to fleet %s prefix %s: %v, want ErrBadSig", other.Fleet, other.Prefix, err)
		}
	}
	if err := got.CheckTopics(fleet.Topics{Fleet: "prod"}); !errors.Is(err, fleet.ErrWrongFleet) || !strings.Contains(err.Error(), "sign it for fleet prod with tern agent release --fleet prod") {
		t.Errorf("CheckTopics for fleet prod: %v", err)
	}
	other = got
	other.Sig, other.Key = nil, ""
	if err := other.Verify(trust); !errors.Is(err, signing.ErrUnsigned) {
		t.Errorf("Verify of an unsigned release: %v, want ErrUnsigned", err)
	}
}

func TestParseAgentReleaseRefuses(t *testing.T) {
	good, err := fleet.NewAgentRelease("armv7", 3, fakeELF(4096))
	if err != nil {
		t.Fatal(err)
	}
	good.SetTopics(topics)
	notELF, _ := fleet.NewAgentRelease("armv7", 3, []byte("#!/bin/sh\nreboot\n"))
	notELF.SetTopics(topics)
	set := func(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }
	for _, tc := range []struct {
		name    string
		payload []byte
		is      error
		msg     string
	}{
		{"arch", agentJSON(t, good, set("arch", "mips")), fleet.ErrMalformed, `bad "arch"`},
		{"version 0", agentJSON(t, good, set("version", 0)), fleet.ErrMalformed, "version 0"},
		{"version 2^53", agentJSON(t, good, set("version", uint64(fleet.MaxVersion+1))), fleet.ErrMalformed, "above the largest version, 9007199254740991"},
		{"no fleet", agentJSON(t, good, func(m map[string]any) { delete(m, "fleet") }), fleet.ErrMalformed, `no "fleet"`},
		{"no prefix", agentJSON(t, good, func(m map[string]any) { delete(m, "prefix") }), fleet.ErrMalformed, `no "prefix"`},
		{"format 1", agentJSON(t, good, set("format", 1)), fleet.ErrUnsupportedFormat, "make it again with a tern that writes format 2 (tern agent release)"},
		{"no gzip", agentJSON(t, good, func(m map[string]any) { delete(m, "gzip") }), fleet.ErrMalformed, `no "gzip"`},
		{"not gzip", agentJSON(t, good, set("gzip", base64.StdEncoding.EncodeToString([]byte("plain")))), fleet.ErrMalformed, "not gzip"},
		{"size", agentJSON(t, good, set("size", 4095)), fleet.ErrHashMismatch, `not the 4095 bytes`},
		{"size over limit", agentJSON(t, good, set("size", fleet.MaxAgentSize+1)), fleet.ErrTooLarge, "limit"},
		{"hash", agentJSON(t, good, set("sha256", strings.Repeat("0", 64))), fleet.ErrHashMismatch, "SHA-256"},
		{"not ELF", agentJSON(t, notELF, nil), fleet.ErrMalformed, "not an ELF"},
		{"payload over limit", append([]byte(`{"format":2,"x":"`), bytes.Repeat([]byte("a"), fleet.MaxAgentPayload)...), fleet.ErrTooLarge, "limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := fleet.ParseAgentRelease(tc.payload)
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %v, want %v saying %q", err, tc.is, tc.msg)
			}
		})
	}
}

func FuzzParseAgentRelease(f *testing.F) {
	good, _ := fleet.NewAgentRelease("arm64", 1, fakeELF(512))
	good.SetTopics(topics)
	b, _ := json.Marshal(good)
	f.Add(b)
	good.Version = fleet.MaxVersion
	b, _ = json.Marshal(good)
	f.Add(b)
	f.Add([]byte(`{"format":1,"arch":"arm64","version":1,"gzip":"H4sI"}`))
	f.Add([]byte(`{"format":2,"prefix":"tern","fleet":"demo","arch":"arm64","version":9007199254740992,"gzip":"H4sI"}`))
	f.Add([]byte(`{"format":2,"prefix":"tern/","fleet":"","arch":"arm64","version":1,"gzip":"H4sI"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := fleet.ParseAgentRelease(b)
		if err == nil && (len(r.Binary) != r.Size || r.Size > fleet.MaxAgentSize) {
			t.Fatalf("accepted a release whose binary is %d bytes, size %d", len(r.Binary), r.Size)
		}
		if err == nil && (r.Version == 0 || r.Version > fleet.MaxVersion || r.Prefix == "" || (fleet.Topics{Prefix: r.Prefix, Fleet: r.Fleet}).Validate() != nil) {
			t.Fatalf("accepted a release that breaks its own rules: version %d, prefix %q, fleet %q", r.Version, r.Prefix, r.Fleet)
		}
	})
}

// An agent release reaches the devices of its architecture only, retained;
// one published on the wrong architecture's topic is refused.
func TestAgentReleaseReachesDevice(t *testing.T) {
	forEachBroker(t, func(t *testing.T, url string) {
		op := dialOperator(t, url)
		bin := fakeELF(12 << 20) // a ternd's size
		r, err := fleet.NewAgentRelease("arm64", 1, bin)
		if err != nil {
			t.Fatal(err)
		}
		if err := op.PushAgentRelease(t.Context(), r); err != nil {
			t.Fatal(err)
		}
		opts := testOptions(url, "pi-020")
		opts.AgentArch = "arm64"
		d := newDevice(t, opts)
		run(t, d)
		opts = testOptions(url, "pi-021")
		opts.AgentArch = "armv7"
		d7 := newDevice(t, opts)
		run(t, d7)

		got := recv(t, d.AgentReleases(), "the retained agent release")
		if got.Version != 1 || !bytes.Equal(got.Binary, bin) {
			t.Errorf("got version %d, %d bytes; want version 1, %d bytes", got.Version, len(got.Binary), len(bin))
		}
		waitConnected(t, d7)
		select {
		case r := <-d7.AgentReleases():
			t.Errorf("the armv7 device got the release for %s", r.Arch)
		default:
		}
		wrong, _ := fleet.NewAgentRelease("arm64", 2, fakeELF(100))
		wrong.SetTopics(topics)
		publishRaw(t, url, topics.Agent("armv7"), string(agentJSON(t, wrong, nil)), false)
		ref := recv(t, d7.Refusals(), "the refusal of a release on the wrong topic")
		if !ref.Agent || !strings.Contains(ref.Err.Error(), "publish it on "+topics.Agent("arm64")) {
			t.Errorf("refusal %+v, want an agent refusal naming the right topic", ref)
		}
		other, _ := fleet.NewAgentRelease("arm64", 3, fakeELF(100))
		other.SetTopics(fleet.Topics{Fleet: "prod"})
		publishRaw(t, url, topics.Agent("arm64"), string(agentJSON(t, other, nil)), false)
		ref = recv(t, d.Refusals(), "the refusal of a release made for another fleet")
		if !ref.Agent || !errors.Is(ref.Err, fleet.ErrWrongFleet) || !strings.Contains(ref.Err.Error(), `made for fleet "prod"`) {
			t.Errorf("refusal %+v, want an agent refusal saying it was made for fleet prod", ref)
		}
	})
}

// Through the shipped ACL a device receives its architecture's agent
// releases; under an ACL from before agent releases (no read on
// tern/+/agent/+) it still connects and gets its target: agent updates are
// optional, the fleet contract is not. (Mosquitto 2 acknowledges such a
// subscription and filters at delivery; a broker that refuses it in the
// SUBACK is logged by the device, which goes on.)
func TestAgentReleaseACL(t *testing.T) {
	shipped, err := filepath.Abs(filepath.Join("..", "firmware", "mosquitto", "acl.conf"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(shipped)
	if err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(t.TempDir(), "old-acl.conf")
	os.WriteFile(old, bytes.ReplaceAll(b, []byte("pattern read tern/+/agent/+\n"), nil), 0o644)
	for name, acl := range map[string]string{"shipped": shipped, "without agent topics": old} {
		t.Run(name, func(t *testing.T) {
			url := fleettest.MosquittoWithACL(t, map[string]string{"tern-operator": "ops", "pi-030": "pw"}, acl)
			op, err := fleet.DialOperator(t.Context(), fleet.OperatorOptions{Broker: url, Topics: topics, Username: "tern-operator", Password: "ops", ConnectTimeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer op.Close()
			r, _ := fleet.NewAgentRelease("arm64", 1, fakeELF(1000))
			if err := op.PushAgentRelease(t.Context(), r); err != nil {
				t.Fatal(err)
			}
			if err := op.PushTarget(t.Context(), "pi-030", fleet.TargetEnvelope{Version: 1, Target: json.RawMessage(`{"a":1}`)}); err != nil {
				t.Fatal(err)
			}
			opts := testOptions(url, "pi-030")
			opts.Username, opts.Password, opts.AgentArch = "pi-030", "pw", "arm64"
			d := newDevice(t, opts)
			run(t, d)
			recv(t, d.Targets(), "the target")
			if name == "shipped" {
				recv(t, d.AgentReleases(), "the agent release")
			}
		})
	}
}
