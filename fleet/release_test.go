package fleet_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/internal/signing"
)

// tinyWasm is the smallest WebAssembly module: header and version.
var tinyWasm = []byte("\x00asm\x01\x00\x00\x00")

// releaseJSON is a release of tinyWasm with fields replaced by edit.
func releaseJSON(t testing.TB, edit func(m map[string]any)) string {
	t.Helper()
	env := fleet.NewRelease("relay", 4, tinyWasm)
	env.ModuleVersion = "1.3.0"
	env.SetTopics(topics)
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(m)
	}
	b, err = json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseReleaseEnvelope(t *testing.T) {
	env, err := fleet.ParseReleaseEnvelope([]byte(releaseJSON(t, nil)))
	if err != nil {
		t.Fatal(err)
	}
	want := fleet.NewRelease("relay", 4, tinyWasm)
	want.ModuleVersion = "1.3.0"
	want.SetTopics(topics)
	if !env.Issued.Equal(want.Issued) {
		t.Errorf("issued %v, want %v", env.Issued, want.Issued)
	}
	env.Issued = want.Issued
	if !reflect.DeepEqual(env, want) {
		t.Errorf("got %+v, want %+v", env, want)
	}
	if want.SHA256 != "93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476" || want.Size != 8 {
		t.Errorf("NewRelease: sha256 %s size %d, want the code's", want.SHA256, want.Size)
	}
}

func TestParseReleaseEnvelopeRefuses(t *testing.T) {
	set := func(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }
	for _, tc := range []struct {
		name    string
		payload string
		is      error
		msg     string
	}{
		{"not JSON", "relay.wasm", fleet.ErrMalformed, "not valid JSON"},
		{"format 4", releaseJSON(t, set("format", 4)), fleet.ErrUnsupportedFormat, "upgrade ternd"},
		{"format 1", releaseJSON(t, set("format", 1)), fleet.ErrUnsupportedFormat, "no longer reads: its signature does not cover the fleet and topic prefix, so it could be replayed into another fleet; make it again with a tern that writes format 2 (tern release)"},
		{"no fleet", releaseJSON(t, func(m map[string]any) { delete(m, "fleet") }), fleet.ErrMalformed, `no "fleet"`},
		{"no prefix", releaseJSON(t, func(m map[string]any) { delete(m, "prefix") }), fleet.ErrMalformed, `no "prefix"`},
		{"bad fleet", releaseJSON(t, set("fleet", "a b")), fleet.ErrMalformed, `bad "fleet"`},
		{"version 2^53", releaseJSON(t, set("version", uint64(fleet.MaxVersion+1))), fleet.ErrMalformed, "version 9007199254740992, above the largest version, 9007199254740991"},
		{"version 2^64-1", releaseJSON(t, set("version", uint64(1<<64-1))), fleet.ErrMalformed, "above the largest version"},
		{"no module", releaseJSON(t, func(m map[string]any) { delete(m, "module") }), fleet.ErrMalformed, `bad "module": empty name`},
		{"module with slash", releaseJSON(t, set("module", "a/b")), fleet.ErrMalformed, "MQTT level separator"},
		{"version 0", releaseJSON(t, set("version", 0)), fleet.ErrMalformed, "version 0"},
		{"no wasm", releaseJSON(t, func(m map[string]any) { delete(m, "wasm") }), fleet.ErrMalformed, `no "wasm"`},
		{"wasm not base64", releaseJSON(t, set("wasm", "not base64!")), fleet.ErrMalformed, "not valid"},
		{"not wasm", releaseJSON(t, set("wasm", base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\nrm -rf /")))), fleet.ErrMalformed, "not a WebAssembly module"},
		{"no hash", releaseJSON(t, func(m map[string]any) { delete(m, "sha256") }), fleet.ErrMalformed, `"sha256" must be`},
		{"uppercase hash", releaseJSON(t, func(m map[string]any) { m["sha256"] = strings.ToUpper(m["sha256"].(string)) }), fleet.ErrMalformed, "lowercase hex"},
		{"size differs", releaseJSON(t, set("size", 9)), fleet.ErrHashMismatch, `the code is 8 bytes but "size" says 9`},
		{"hash differs", releaseJSON(t, set("sha256", strings.Repeat("ab", 32))), fleet.ErrHashMismatch, "changed after the envelope was made"},
		{"payload too large", releaseJSON(t, set("pad", strings.Repeat("a", fleet.MaxReleasePayload))), fleet.ErrTooLarge, "modules are limited to 8388608 bytes (8 MiB)"},
		{"module too large", releaseJSON(t, func(m map[string]any) {
			big := make([]byte, fleet.MaxModuleSize+1)
			copy(big, tinyWasm)
			m["wasm"], m["size"] = big, len(big)
		}), fleet.ErrTooLarge, "the module is 8388609 bytes, over the 8388608-byte limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := fleet.ParseReleaseEnvelope([]byte(tc.payload))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, tc.is) {
				t.Errorf("error %q does not match %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.msg) || !strings.HasPrefix(err.Error(), "fleet: module release") {
				t.Errorf("error %q: want it to start with \"fleet: module release\" and contain %q", err, tc.msg)
			}
		})
	}
}

// A release verifies only unchanged, and only against the key that signed
// it: every field that matters is covered, the code through its hash.
func TestReleaseSignature(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	strangerPub, strangerPriv, _ := ed25519.GenerateKey(rand.Reader)
	trust := signing.NewTrust(pub)
	signed := fleet.NewRelease("relay", 4, tinyWasm)
	signed.ModuleVersion = "1.3.0"
	signed.SetTopics(topics)
	signed.Sign(priv)
	if err := signed.Verify(trust); err != nil {
		t.Fatalf("a signed release does not verify: %v", err)
	}
	byStranger := signed
	byStranger.Sign(strangerPriv)
	if err := byStranger.Verify(signing.NewTrust(strangerPub)); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		edit func(*fleet.ReleaseEnvelope)
		is   error
	}{
		"unsigned":       {func(e *fleet.ReleaseEnvelope) { e.Key, e.Sig = "", nil }, signing.ErrUnsigned},
		"unknown key":    {func(e *fleet.ReleaseEnvelope) { *e = byStranger }, signing.ErrUnknownKey},
		"forged":         {func(e *fleet.ReleaseEnvelope) { e.Sig = byStranger.Sig }, signing.ErrBadSig},
		"other module":   {func(e *fleet.ReleaseEnvelope) { e.Module = "heater" }, signing.ErrBadSig},
		"other fleet":    {func(e *fleet.ReleaseEnvelope) { e.Fleet = "prod" }, signing.ErrBadSig},
		"other prefix":   {func(e *fleet.ReleaseEnvelope) { e.Prefix = "acme" }, signing.ErrBadSig},
		"other version":  {func(e *fleet.ReleaseEnvelope) { e.Version = 5 }, signing.ErrBadSig},
		"other semver":   {func(e *fleet.ReleaseEnvelope) { e.ModuleVersion = "9.9.9" }, signing.ErrBadSig},
		"other code":     {func(e *fleet.ReleaseEnvelope) { e.Wasm = append([]byte(nil), tinyWasm...); e.Wasm[7] = 1 }, signing.ErrBadSig},
		"longer code":    {func(e *fleet.ReleaseEnvelope) { e.Wasm = append(append([]byte(nil), tinyWasm...), 0, 0) }, signing.ErrBadSig},
		"stated hash":    {func(e *fleet.ReleaseEnvelope) { e.SHA256 = strings.Repeat("0", 64) }, nil}, // not signed: Parse checks it against the code
		"issued changed": {func(e *fleet.ReleaseEnvelope) { e.Issued = e.Issued.Add(1) }, nil},
	} {
		t.Run(name, func(t *testing.T) {
			env := signed
			tc.edit(&env)
			err := env.Verify(trust)
			if !errors.Is(err, tc.is) || (tc.is == nil) != (err == nil) {
				t.Fatalf("Verify: %v, want %v", err, tc.is)
			}
			if err != nil && tc.is == signing.ErrUnsigned && !strings.Contains(err.Error(), "tern release --key") {
				t.Errorf("the error should say how to sign: %v", err)
			}
		})
	}
}

func FuzzParseReleaseEnvelope(f *testing.F) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signed := fleet.NewRelease("relay", 7, tinyWasm)
	signed.SetTopics(topics)
	signed.Sign(priv)
	b, _ := json.Marshal(signed)
	f.Add(b)
	for _, s := range []string{
		releaseJSON(f, nil),
		`{"format":2,"prefix":"tern","fleet":"demo","module":"relay","version":1,"sha256":"93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476","size":8,"wasm":"AGFzbQEAAAA="}`,
		`{"format":2,"prefix":"acme/tern","fleet":"demo","module":"relay","version":9007199254740991,"sha256":"93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476","size":8,"wasm":"AGFzbQEAAAA="}`,
		`{"format":2,"prefix":"tern","fleet":"demo","module":"relay","version":9007199254740992,"sha256":"93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476","size":8,"wasm":"AGFzbQEAAAA="}`,
		`{"format":2,"prefix":"tern","fleet":"demo","module":"relay","version":1,"sha256":"93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476","size":8,"wasm":"AGFzbQEAAAA=","key":"0123456789abcdef","sig":"AAEC"}`,
		`{"format":2,"prefix":"tern","module":"relay","version":1,"sha256":"93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476","size":8,"wasm":"AGFzbQEAAAA="}`,
		`{"format":2,"prefix":"tern/","fleet":"demo","module":"relay","version":1,"sha256":"93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476","size":8,"wasm":"AGFzbQEAAAA="}`,
		`{"format":1,"module":"relay","version":1,"sha256":"93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476","size":8,"wasm":"AGFzbQEAAAA="}`,
		`{"format":2,"prefix":"tern","fleet":"demo","module":"relay","version":18446744073709551615,"sha256":"","size":-1,"wasm":""}`,
		`{"format":3,"module":"relay","version":1}`,
		`{"format":3,"prefix":"tern","fleet":"demo","module":"relay","version":1,"sha256":"93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476","size":8,"chunks":{"size":1024,"sha256":["93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476"]}}`,
		`{"format":3,"prefix":"tern","fleet":"demo","module":"relay","version":1,"sha256":"93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476","size":8,"wasm":"AGFzbQEAAAA=","chunks":{"size":1024,"sha256":[]}}`,
		`{"FORMAT":2,"Prefix":"tern","FLEET":"demo","Module":"relay","VERSION":1,"Wasm":"AGFzbQEAAAA="}`,
		`[]`, `null`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	trust := signing.NewTrust(make(ed25519.PublicKey, ed25519.PublicKeySize))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := fleet.ParseReleaseEnvelope(b)
		if err != nil {
			return
		}
		// Whatever arrives, verifying it answers, and never says yes to a
		// key the device does not hold.
		if err := env.Verify(trust); err == nil {
			t.Fatalf("release %.200s verified against a key nobody signs with", b)
		}
		if err := fleet.ValidID(env.Module); err != nil || env.Version == 0 || env.Version > fleet.MaxVersion || len(env.Wasm) > fleet.MaxModuleSize {
			t.Fatalf("parsed a release that breaks its own rules: %+v", env)
		}
		if chunked := env.Format == fleet.ChunkedFormat; chunked && (len(env.Wasm) > 0 || env.Chunks == nil || env.Size <= 0 || env.Size > fleet.MaxModuleSize) ||
			!chunked && (env.Size != len(env.Wasm) || env.Chunks != nil) {
			t.Fatalf("parsed a release that breaks the rules of its format: %+v", env)
		}
		if err := (fleet.Topics{Prefix: env.Prefix, Fleet: env.Fleet}).Validate(); err != nil || env.Prefix == "" {
			t.Fatalf("parsed a release for a fleet that cannot be (%v): %+v", err, env)
		}
		if err := env.CheckTopics(fleet.Topics{Prefix: env.Prefix, Fleet: env.Fleet}); err != nil {
			t.Fatalf("CheckTopics for its own fleet: %v", err)
		}
		again := roundTrip(t, env, fleet.ParseReleaseEnvelope)
		if fmt.Sprint(env.Prefix, env.Fleet, env.Module, env.Version, env.ModuleVersion, env.SHA256, env.Key) != fmt.Sprint(again.Prefix, again.Fleet, again.Module, again.Version, again.ModuleVersion, again.SHA256, again.Key) ||
			string(env.Wasm) != string(again.Wasm) || string(env.Sig) != string(again.Sig) || !env.Issued.Equal(again.Issued) {
			t.Fatalf("round trip changed the release:\n%+v\n%+v", env, again)
		}
	})
}

// bigWasm is a WebAssembly header followed by n-8 random bytes: the fleet
// layer carries code without compiling it.
func bigWasm(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	copy(b, tinyWasm)
	return b
}

// A release reaches the devices that run the module: retained, so a
// device that connects later gets it, and live. A device that does not run
// the module never sees it. The operator reads the retained one back.
func TestReleaseReachesDevice(t *testing.T) {
	forEachBroker(t, func(t *testing.T, url string) {
		op := dialOperator(t, url)
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		first := fleet.NewRelease("relay", 1, bigWasm(3<<20)) // a Go module's size
		first.ModuleVersion = "1.0.0"
		first.SetTopics(topics)
		first.Sign(priv)
		if err := op.PushRelease(t.Context(), first); err != nil {
			t.Fatal(err)
		}

		opts := testOptions(url, "pi-010")
		opts.Modules = []string{"relay", "heater"}
		d := newDevice(t, opts)
		run(t, d)
		other := testOptions(url, "pi-011")
		other.Modules = []string{"heater"}
		d2 := newDevice(t, other)
		run(t, d2)

		got := recv(t, d.Releases(), "the retained release")
		if !got.Issued.Equal(first.Issued) {
			t.Errorf("issued %v, want %v", got.Issued, first.Issued)
		}
		got.Issued = first.Issued
		if !reflect.DeepEqual(got, first) {
			t.Errorf("the release changed on the way: got version %d, %d bytes", got.Version, len(got.Wasm))
		}
		if err := got.Verify(signing.NewTrust(priv.Public().(ed25519.PublicKey))); err != nil {
			t.Errorf("the received release does not verify: %v", err)
		}

		waitConnected(t, d)
		second := fleet.NewRelease("relay", 2, bigWasm(1000))
		if err := op.PushRelease(t.Context(), second); err != nil {
			t.Fatal(err)
		}
		for got = recv(t, d.Releases(), "the live release"); got.Version == 1; got = recv(t, d.Releases(), "the live release") {
			// the retained one again: redelivery is allowed
		}
		if got.Version != 2 || !reflect.DeepEqual(got.Wasm, second.Wasm) {
			t.Errorf("got version %d, want 2", got.Version)
		}
		heater := fleet.NewRelease("heater", 1, tinyWasm)
		if err := op.PushRelease(t.Context(), heater); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, d2.Releases(), "the heater release"); got.Module != "heater" {
			t.Errorf("pi-011 got a release of %s; it runs heater only", got.Module)
		}
		select {
		case r := <-d2.Releases():
			t.Errorf("pi-011 got a release of %s; it runs heater only", r.Module)
		default:
		}

		retained, ok, err := op.RetainedRelease(t.Context(), "relay", wait)
		if err != nil || !ok || retained.Version != 2 {
			t.Errorf("RetainedRelease: version %d, ok %v, err %v; want version 2", retained.Version, ok, err)
		}
		if _, ok, err := op.RetainedRelease(t.Context(), "nothing-here", 200*time.Millisecond); ok || err != nil {
			t.Errorf("RetainedRelease of a module never released: ok %v, err %v", ok, err)
		}
	})
}

// Messages on a module topic that are not valid releases go to Refusals,
// marked with the module, with a message for the operator.
func TestMalformedReleasesAreRefused(t *testing.T) {
	forEachBroker(t, func(t *testing.T, url string) {
		online := watchOnline(t, url, topics.Online("pi-012"))
		opts := testOptions(url, "pi-012")
		opts.Modules = []string{"relay"}
		d := newDevice(t, opts)
		run(t, d)
		expect(t, online, "true") // subscribed

		oversize := `{"format":1,"module":"relay","version":9,"wasm":"` + strings.Repeat("A", fleet.MaxReleasePayload) + `"}`
		for _, tc := range []struct {
			name, payload string
			is            error
			msg           string
		}{
			{"not JSON", "relay v2", fleet.ErrMalformed, "not valid JSON"},
			{"hash mismatch", releaseJSON(t, func(m map[string]any) { m["sha256"] = strings.Repeat("0", 64) }), fleet.ErrHashMismatch, "changed after the envelope was made"},
			{"oversize", oversize, fleet.ErrTooLarge, fmt.Sprintf("over the %d-byte limit", fleet.MaxReleasePayload)},
			{"other module's topic", releaseJSON(t, func(m map[string]any) { m["module"] = "heater" }), fleet.ErrMalformed, "published on the topic of module relay"},
			{"other fleet", releaseJSON(t, func(m map[string]any) { m["fleet"] = "prod" }), fleet.ErrWrongFleet,
				`module release of relay version 4 was made for fleet "prod" with topic prefix "tern", not for fleet "demo" with prefix "tern": what is signed for one fleet is not valid in another; sign it for fleet demo with tern release --module relay --fleet demo`},
			{"other prefix", releaseJSON(t, func(m map[string]any) { m["prefix"] = "acme/tern" }), fleet.ErrWrongFleet, `made for fleet "demo" with topic prefix "acme/tern"`},
			{"format 1", releaseJSON(t, func(m map[string]any) { m["format"] = 1 }), fleet.ErrUnsupportedFormat, "no longer reads"},
			{"version above the ceiling", releaseJSON(t, func(m map[string]any) { m["version"] = uint64(1<<64 - 1) }), fleet.ErrMalformed, "above the largest version"},
		} {
			publishRaw(t, url, topics.Module("relay"), tc.payload, false)
			r := recv(t, d.Refusals(), "a refusal: "+tc.name)
			if r.Topic != topics.Module("relay") || r.Module != "relay" || !errors.Is(r.Err, tc.is) || !strings.Contains(r.Err.Error(), tc.msg) {
				t.Errorf("%s: got refusal %q on %s (module %q), want %v containing %q", tc.name, r.Err, r.Topic, r.Module, tc.is, tc.msg)
			}
		}
		publishRaw(t, url, topics.Module("relay"), releaseJSON(t, nil), false)
		if got := recv(t, d.Releases(), "the valid release"); got.Version != 4 {
			t.Errorf("got version %d, want 4", got.Version)
		}
	})
}

// The operator refuses to publish what every device would refuse.
func TestPushReleaseRefusesWhatDevicesRefuse(t *testing.T) {
	op := dialOperator(t, fleettest.Embedded(t))
	bad := fleet.NewRelease("relay", 1, tinyWasm)
	bad.SHA256 = strings.Repeat("0", 64)
	if err := op.PushRelease(t.Context(), fleet.NewRelease("relay", fleet.MaxVersion+1, tinyWasm)); !errors.Is(err, fleet.ErrMalformed) || !strings.Contains(err.Error(), "above the largest version") {
		t.Errorf("version above the ceiling: %v", err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	unaddressed := fleet.NewRelease("relay", 1, tinyWasm)
	unaddressed.Sign(priv)
	if err := op.PushRelease(t.Context(), unaddressed); err == nil || !strings.Contains(err.Error(), "signed for no fleet") {
		t.Errorf("signed for no fleet: %v", err)
	}
	prod := fleet.NewRelease("relay", 1, tinyWasm)
	prod.SetTopics(fleet.Topics{Fleet: "prod"})
	prod.Sign(priv)
	if err := op.PushRelease(t.Context(), prod); !errors.Is(err, fleet.ErrWrongFleet) || !strings.Contains(err.Error(), "--fleet prod") {
		t.Errorf("made for fleet prod: %v", err)
	}
	if err := op.PushRelease(t.Context(), bad); !errors.Is(err, fleet.ErrHashMismatch) {
		t.Errorf("hash mismatch: %v", err)
	}
	if err := op.PushRelease(t.Context(), fleet.NewRelease("relay", 1, bigWasm(fleet.MaxModuleSize+1))); !errors.Is(err, fleet.ErrTooLarge) {
		t.Errorf("oversize: %v", err)
	}
}
