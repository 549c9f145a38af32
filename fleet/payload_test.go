package fleet_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/runtime/api"
)

func TestParseTargetEnvelope(t *testing.T) {
	good := `{"format":2,"prefix":"tern","fleet":"demo","version":7,"target":{"relays":{"fan":{"on":true}}},"issued":"2025-11-24T13:00:00Z"}`
	env, err := fleet.ParseTargetEnvelope([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	want := fleet.TargetEnvelope{
		Format:  2,
		Prefix:  "tern",
		Fleet:   "demo",
		Version: 7,
		Target:  json.RawMessage(`{"relays":{"fan":{"on":true}}}`),
		Issued:  time.Date(2025, 11, 24, 13, 0, 0, 0, time.UTC),
	}
	if !reflect.DeepEqual(env, want) {
		t.Errorf("got %+v, want %+v", env, want)
	}
	if _, err := fleet.ParseTargetEnvelope([]byte(`{"format":2,"prefix":"acme/tern","fleet":"demo","version":1,"target":{},"signature":"later"}`)); err != nil {
		t.Errorf("unknown fields must be ignored within a format: %v", err)
	}
	// The largest version is a version like any other.
	if env, err := fleet.ParseTargetEnvelope([]byte(`{"format":2,"prefix":"tern","fleet":"demo","version":9007199254740991,"target":{}}`)); err != nil || env.Version != fleet.MaxVersion {
		t.Errorf("version 2^53-1: %d, %v", env.Version, err)
	}
}

// target is a target envelope for fleet demo with the fields in edit
// replaced (nil deletes).
func target(t *testing.T, edit map[string]any) string {
	t.Helper()
	m := map[string]any{"format": 2, "prefix": "tern", "fleet": "demo", "version": 1, "target": map[string]any{}}
	for k, v := range edit {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseTargetEnvelopeRefuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload string
		is      error
		msg     string
	}{
		{"empty", "  ", fleet.ErrMalformed, "is empty"},
		{"not JSON", "relays on", fleet.ErrMalformed, "not valid JSON"},
		{"array", `[1,2]`, fleet.ErrMalformed, "must be a JSON object, got an array"},
		{"string", `"hi"`, fleet.ErrMalformed, "got a string"},
		{"no format", `{"version":1,"target":{}}`, fleet.ErrMalformed, `no "format"; add "format": 2`},
		{"null format", `{"format":null,"version":1,"target":{}}`, fleet.ErrMalformed, `no "format"`},
		{"format 1", `{"format":1,"version":1,"target":{}}`, fleet.ErrUnsupportedFormat, "format 1, which this build no longer reads: its signature does not cover the fleet and topic prefix"},
		{"format 5", target(t, map[string]any{"format": 5}), fleet.ErrUnsupportedFormat, "format 5 but this build reads format 2 only; upgrade ternd"},
		{"format string", target(t, map[string]any{"format": "2"}), fleet.ErrMalformed, "not a format number"},
		{"format float", `{"format":2.0,"version":1,"target":{}}`, fleet.ErrMalformed, "not a format number"},
		{"no fleet", target(t, map[string]any{"fleet": nil}), fleet.ErrMalformed, `no "fleet": name the fleet it is for`},
		{"no prefix", target(t, map[string]any{"prefix": nil}), fleet.ErrMalformed, `no "prefix"`},
		{"bad fleet", target(t, map[string]any{"fleet": "de/mo"}), fleet.ErrMalformed, `bad "fleet"`},
		{"bad prefix", target(t, map[string]any{"prefix": "tern/"}), fleet.ErrMalformed, `bad "prefix"`},
		{"wildcard prefix", target(t, map[string]any{"prefix": "#"}), fleet.ErrMalformed, "wildcard"},
		{"version 0", target(t, map[string]any{"version": 0}), fleet.ErrMalformed, "version 0"},
		{"no version", target(t, map[string]any{"version": nil}), fleet.ErrMalformed, "version 0"},
		{"version 2^53", target(t, map[string]any{"version": uint64(fleet.MaxVersion + 1)}), fleet.ErrMalformed, "has version 9007199254740992, above the largest version, 9007199254740991"},
		{"version 2^64-1", target(t, map[string]any{"version": uint64(1<<64 - 1)}), fleet.ErrMalformed, "above the largest version"},
		{"version 2^64", `{"format":2,"prefix":"tern","fleet":"demo","version":18446744073709551616,"target":{}}`, fleet.ErrMalformed, `field "version" is 18446744073709551616, above the largest version, 9007199254740991`},
		{"negative version", target(t, map[string]any{"version": -1}), fleet.ErrMalformed, `field "version" must not be negative, got -1`},
		{"version with an exponent", `{"format":2,"prefix":"tern","fleet":"demo","version":2e1,"target":{}}`, fleet.ErrMalformed, `field "version" must be a whole number written in digits only, got 2e1`},
		{"replaces not above the version", target(t, map[string]any{"version": 5, "replaces": 5}), fleet.ErrMalformed, `has "replaces": 5, which is not above it`},
		{"bad scope", target(t, map[string]any{"scope": "room/1"}), fleet.ErrMalformed, `bad "scope"`},
		{"target nested too deep", `{"format":2,"prefix":"tern","fleet":"demo","version":1,"target":` + strings.Repeat(`{"a":`, 70) + `1` + strings.Repeat(`}`, 71), fleet.ErrMalformed, `version 1: "target": `},
		{"string version", target(t, map[string]any{"version": "3"}), fleet.ErrMalformed, `field "version"`},
		{"no target", target(t, map[string]any{"target": nil}), fleet.ErrMalformed, `"target" must be a JSON object`},
		{"null target", `{"format":2,"prefix":"tern","fleet":"demo","version":1,"target":null}`, fleet.ErrMalformed, "got null"},
		{"array target", target(t, map[string]any{"target": []int{}}), fleet.ErrMalformed, "got an array"},
		{"bad issued", target(t, map[string]any{"issued": "yesterday"}), fleet.ErrMalformed, "not valid"},
		{"trailing data", target(t, nil) + ` {}`, fleet.ErrMalformed, "not valid JSON"},
		{"too large", target(t, map[string]any{"target": map[string]string{"x": strings.Repeat("a", fleet.MaxPayload)}}), fleet.ErrTooLarge, "over the 262144-byte limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := fleet.ParseTargetEnvelope([]byte(tc.payload))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, tc.is) {
				t.Errorf("error %q does not match %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.msg) || !strings.HasPrefix(err.Error(), "fleet: target envelope") {
				t.Errorf("error %q: want it to start with \"fleet: target envelope\" and contain %q", err, tc.msg)
			}
		})
	}
}

// A target is for one fleet and topic prefix: the signature covers them,
// and CheckTopics refuses an envelope made for another, saying which it
// was made for and how to make one for this fleet.
func TestTargetFleet(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	trust := signing.NewTrust(pub)
	demo := fleet.Topics{Fleet: "demo"}
	env := fleet.TargetEnvelope{Format: fleet.Format, Version: 3, Target: json.RawMessage(`{"a":1}`)}
	if err := env.Sign(fleet.DeviceScope("pi-001"), priv); err == nil {
		t.Error("Sign of a target for no fleet succeeded")
	}
	env.SetTopics(demo)
	if env.Prefix != "tern" || env.Fleet != "demo" {
		t.Fatalf("SetTopics: prefix %q fleet %q; want the default prefix written out", env.Prefix, env.Fleet)
	}
	if err := env.Sign(fleet.DeviceScope("pi-001"), priv); err != nil {
		t.Fatal(err)
	}
	if err := env.Verify(fleet.DeviceScope("pi-001"), trust); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if err := env.CheckTopics(demo); err != nil {
		t.Fatalf("CheckTopics for its own fleet: %v", err)
	}
	if err := env.CheckTopics(fleet.Topics{Prefix: "tern", Fleet: "demo"}); err != nil {
		t.Fatalf("CheckTopics with the default prefix written out: %v", err)
	}
	for _, tc := range []struct {
		name   string
		device fleet.Topics
		edit   func(*fleet.TargetEnvelope)
		msg    string
	}{
		{"wrong fleet", fleet.Topics{Fleet: "prod"}, nil,
			`target envelope version 3 was made for fleet "demo" with topic prefix "tern", not for fleet "prod" with prefix "tern": what is signed for one fleet is not valid in another; sign it for fleet prod with tern push (or tern sign) --fleet prod`},
		{"wrong prefix", fleet.Topics{Prefix: "acme/tern", Fleet: "demo"}, nil,
			`made for fleet "demo" with topic prefix "tern", not for fleet "demo" with prefix "acme/tern"`},
		{"wrong prefix, the fix", fleet.Topics{Prefix: "acme", Fleet: "demo"}, nil, "--fleet demo --prefix acme"},
		{"fleet rewritten", demo, func(e *fleet.TargetEnvelope) { e.Fleet = "prod" }, ""},
		{"prefix rewritten", demo, func(e *fleet.TargetEnvelope) { e.Prefix = "acme" }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := env
			if tc.edit != nil {
				// Rewriting the fleet to pass CheckTopics somewhere else
				// breaks the signature.
				tc.edit(&e)
				if err := e.Verify(fleet.DeviceScope("pi-001"), trust); !errors.Is(err, signing.ErrBadSig) {
					t.Errorf("Verify after the fleet was rewritten: %v, want ErrBadSig", err)
				}
				return
			}
			err := e.CheckTopics(tc.device)
			if !errors.Is(err, fleet.ErrWrongFleet) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("CheckTopics: %v, want ErrWrongFleet saying %q", err, tc.msg)
			}
		})
	}
}

// The layout signatures cover is one for every kind of envelope, and it
// is the documented one (docs/mqtt.md): a person can rebuild it.
func TestSignedLayout(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	env := fleet.TargetEnvelope{Format: fleet.Format, Version: 7, Target: json.RawMessage(`{"b":1, "a":{"y":null,"x":"\u003c"}}`)}
	env.SetTopics(fleet.Topics{Prefix: "acme/tern", Fleet: "demo"})
	if err := env.Sign(fleet.GroupScope("heaters"), priv); err != nil {
		t.Fatal(err)
	}
	msg := "tern target 2\nacme/tern\ndemo\ngroup/heaters\n7\n" + `{"a":{"x":"\u003c","y":null},"b":1}` + "\n"
	if !ed25519.Verify(pub, []byte(msg), env.Sig) {
		t.Errorf("the target's signature is not over %q", msg)
	}
	rel := fleet.NewRelease("relay", 4, tinyWasm)
	rel.ModuleVersion = "1.3.0"
	rel.SetTopics(fleet.Topics{Fleet: "demo"})
	rel.Sign(priv)
	msg = "tern release 2\ntern\ndemo\nmodule/relay\n4\n1.3.0\n93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476\n8\n"
	if !ed25519.Verify(pub, []byte(msg), rel.Sig) {
		t.Errorf("the release's signature is not over %q", msg)
	}
}

func TestParseReports(t *testing.T) {
	state := `{"format":1,"device":"pi-001","time":"2025-11-24T13:00:05Z","target_version":7,"converged":true,"phase":"idle","state":{"relays":{"fan":{"on":true}}},"modules":{"relay":"1.2.0"}}`
	s, err := fleet.ParseStateReport([]byte(state))
	if err != nil {
		t.Fatal(err)
	}
	wantState := fleet.StateReport{Format: 1, Device: "pi-001", Status: api.Status{
		Time: time.Date(2025, 11, 24, 13, 0, 5, 0, time.UTC), TargetVersion: 7, Converged: true, Phase: api.PhaseIdle,
		State: json.RawMessage(`{"relays":{"fan":{"on":true}}}`), Modules: map[string]string{"relay": "1.2.0"},
	}}
	if !reflect.DeepEqual(s, wantState) {
		t.Errorf("got %+v, want %+v", s, wantState)
	}
	// The embedded struct flattens: the report is one object, as documented.
	b, _ := json.Marshal(wantState)
	if !bytes.Equal(b, []byte(state)) {
		t.Errorf("state report encodes as\n%s\nwant\n%s", b, state)
	}

	event := `{"format":1,"device":"pi-001","seq":42,"epoch":"9c1f04a2d3b6e857","id":"e-42","time":"2025-11-24T13:00:04Z","kind":"task.done","target_version":7,"module":"relay","job":"switch","path":"/relays/fan"}`
	e, err := fleet.ParseEventReport([]byte(event))
	if err != nil {
		t.Fatal(err)
	}
	wantEvent := fleet.EventReport{Format: 1, Device: "pi-001", Seq: 42, Epoch: "9c1f04a2d3b6e857", Event: api.Event{
		ID: "e-42", Time: time.Date(2025, 11, 24, 13, 0, 4, 0, time.UTC), Kind: api.EventTaskDone,
		TargetVersion: 7, Module: "relay", Job: "switch", Path: "/relays/fan",
	}}
	if !reflect.DeepEqual(e, wantEvent) {
		t.Errorf("got %+v, want %+v", e, wantEvent)
	}
	if b, _ := json.Marshal(wantEvent); !bytes.Equal(b, []byte(event)) {
		t.Errorf("event report encodes as\n%s\nwant\n%s", b, event)
	}
}

func TestParseReportsRefuse(t *testing.T) {
	for _, tc := range []struct {
		name, payload string
		parse         func([]byte) error
		is            error
		msg           string
	}{
		{"state format 2", `{"format":2,"device":"pi-001"}`, parseState, fleet.ErrUnsupportedFormat, "reads format 1 only; upgrade tern"},
		{"state no device", `{"format":1}`, parseState, fleet.ErrMalformed, `bad "device": empty name`},
		{"state wildcard device", `{"format":1,"device":"+"}`, parseState, fleet.ErrMalformed, "wildcard"},
		{"state bad phase type", `{"format":1,"device":"pi-001","phase":3}`, parseState, fleet.ErrMalformed, `field "phase" must be a string`},
		{"state bad group", `{"format":1,"device":"pi-001","groups":["ok","a/b"]}`, parseState, fleet.ErrMalformed, `bad group in "groups"`},
		{"state groups not a list", `{"format":1,"device":"pi-001","groups":"heaters"}`, parseState, fleet.ErrMalformed, `field "groups" must be an array`},
		{"event no kind", `{"format":1,"device":"pi-001","id":"x"}`, parseEvent, fleet.ErrMalformed, `no "kind"`},
		{"event long epoch", `{"format":1,"device":"pi-001","kind":"drift","seq":1,"epoch":"` + strings.Repeat("e", 65) + `"}`, parseEvent, fleet.ErrMalformed, `"epoch" is 65 bytes`},
		{"event too large", `{"format":1,"device":"pi-001","kind":"drift","message":"` + strings.Repeat("x", fleet.MaxPayload) + `"}`, parseEvent, fleet.ErrTooLarge, "limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.parse([]byte(tc.payload))
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %v, want %v containing %q", err, tc.is, tc.msg)
			}
		})
	}
}

func parseState(b []byte) error { _, err := fleet.ParseStateReport(b); return err }
func parseEvent(b []byte) error { _, err := fleet.ParseEventReport(b); return err }

// Fuzz tests: no input panics, and whatever parses survives a round trip
// through its encoding unchanged.

func FuzzParseTargetEnvelope(f *testing.F) {
	for _, s := range []string{
		`{"format":2,"prefix":"tern","fleet":"demo","version":7,"target":{"relays":{"fan":{"on":true}}},"issued":"2025-11-24T13:00:00Z"}`,
		`{"format":2,"prefix":"tern","fleet":"demo","version":18446744073709551615,"target":{"a":null,"b":[1,2,{"c":"\u003c"}]}}`,
		`{"format":2,"prefix":"tern","fleet":"demo","version":9007199254740991,"target":{}}`,
		`{"format":2,"prefix":"tern","fleet":"demo","version":9007199254740992,"target":{}}`,
		`{"format":2,"prefix":"acme/tern","fleet":"demo","version":1,"target":{}}`,
		`{"format":2,"prefix":"tern/","fleet":"demo","version":1,"target":{}}`,
		`{"format":2,"prefix":"","fleet":"demo","version":1,"target":{}}`,
		`{"format":2,"prefix":"tern","fleet":"+","version":1,"target":{}}`,
		`{"format":2,"prefix":"tern","fleet":"d\nemo","version":1,"target":{}}`,
		`{"format":2,"prefix":"tern","version":1,"target":{}}`,
		`{"format":1,"version":1,"target":{}}`,
		`{"format":3,"version":1,"target":{}}`,
		`{"format":2,"prefix":"tern","fleet":"demo","version":1,"target":{},"issued":"0001-01-01T00:00:00Z"}`,
		`{"FORMAT":2,"Prefix":"tern","FLEET":"demo","Version":1,"TARGET":{}}`,
		`{"format":2,"prefix":"tern","fleet":"demo","version":3,"target":{"a":1},"key":"0123456789abcdef","sig":"AAEC"}`,
		`{"format":2,"prefix":"tern","fleet":"demo","version":3,"target":{"a":1},"sig":"not base64!"}`,
		`[]`, `null`, ``, `{`,
		`{"format":4,"prefix":"tern","fleet":"demo","version":2,"target":{"a":1},"layers":[{"name":"night","when":{"window":{"days":["mon"],"from":"22:00","to":"06:00","zone":"Europe/Berlin"},"facts":{"board":"rpi4"}},"target":{"a":null}}]}`,
		`{"format":2,"prefix":"tern","fleet":"demo","version":2,"target":{},"layers":[{"name":"x","target":{}}]}`,
		`{"format":4,"prefix":"tern","fleet":"demo","version":2,"target":{},"layers":[{"name":"x","when":{"soon":true},"target":{}}]}`,
	} {
		f.Add([]byte(s))
	}
	trust := signing.NewTrust(make(ed25519.PublicKey, ed25519.PublicKeySize))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := fleet.ParseTargetEnvelope(b)
		if err != nil {
			return
		}
		// Whatever arrives, verifying it answers, and never says yes to a
		// key the device does not hold.
		if err := env.Verify(fleet.DeviceScope("pi-001"), trust); err == nil {
			t.Fatalf("envelope %s verified against a key nobody signs with", b)
		}
		if env.Version == 0 || env.Version > fleet.MaxVersion || env.Fleet == "" || env.Prefix == "" {
			t.Fatalf("parsed an envelope that breaks its own rules: %+v", env)
		}
		// It is for its own fleet, and for no other.
		own := fleet.Topics{Prefix: env.Prefix, Fleet: env.Fleet}
		if err := own.Validate(); err != nil {
			t.Fatalf("parsed an envelope for a fleet that cannot be: %v", err)
		}
		if err := env.CheckTopics(own); err != nil {
			t.Fatalf("CheckTopics for its own fleet: %v", err)
		}
		if err := env.CheckTopics(fleet.Topics{Prefix: env.Prefix, Fleet: env.Fleet + "x"}); !errors.Is(err, fleet.ErrWrongFleet) {
			t.Fatalf("CheckTopics for another fleet: %v", err)
		}
		again := roundTrip(t, env, fleet.ParseTargetEnvelope)
		if env.Format != again.Format || env.Prefix != again.Prefix || env.Fleet != again.Fleet || env.Version != again.Version || !env.Issued.Equal(again.Issued) || !sameJSON(t, env.Target, again.Target) ||
			len(env.Layers) > 0 && !sameJSON(t, env.Layers, again.Layers) {
			t.Fatalf("round trip changed the envelope:\n%+v\n%+v", env, again)
		}
	})
}

func FuzzParseStateReport(f *testing.F) {
	for _, s := range []string{
		`{"format":1,"device":"pi-001","time":"2025-11-24T13:00:05Z","target_version":7,"converged":true,"phase":"idle","state":{"relays":{}},"modules":{"relay":"1.2.0"}}`,
		`{"format":1,"device":"pi-001","state":null,"error":"i2c: no device acknowledged the address"}`,
		`{"format":1,"device":"x"}`, `{"format":1}`,
		`{"format":1,"device":"pi-002","groups":["heaters","floor-2"],"target_version":9,"phase":"failed","error":"boom"}`,
		`{"format":1,"device":"pi-002","groups":[]}`, `{"format":1,"device":"pi-002","groups":["a/b"]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := fleet.ParseStateReport(b)
		if err != nil {
			return
		}
		again := roundTrip(t, r, fleet.ParseStateReport)
		if !sameJSON(t, r.State, again.State) {
			t.Fatalf("round trip changed the state: %s, %s", r.State, again.State)
		}
		r.State, again.State = nil, nil
		if !r.Time.Equal(again.Time) {
			t.Fatalf("round trip changed the time: %v, %v", r.Time, again.Time)
		}
		r.Time, again.Time = time.Time{}, time.Time{}
		if len(r.Modules) == 0 && len(again.Modules) == 0 {
			r.Modules, again.Modules = nil, nil // {} and absent are the same report
		}
		if len(r.Groups) == 0 && len(again.Groups) == 0 {
			r.Groups, again.Groups = nil, nil // [] and absent too
		}
		if !reflect.DeepEqual(r, again) {
			t.Fatalf("round trip changed the report:\n%+v\n%+v", r, again)
		}
	})
}

func FuzzParseEventReport(f *testing.F) {
	for _, s := range []string{
		`{"format":1,"device":"pi-001","id":"e-42","time":"2025-11-24T13:00:04Z","kind":"task.done","target_version":7,"module":"relay","job":"switch","path":"/relays/fan"}`,
		`{"format":1,"device":"pi-001","kind":"target.refused","message":"fleet: target envelope has version 0"}`,
		`{"format":1,"device":"pi-001"}`,
		`{"format":1,"device":"pi-001","seq":18446744073709551615,"kind":"converged"}`,
		`{"format":1,"device":"pi-001","seq":-1,"kind":"converged"}`,
		`{"format":1,"device":"pi-001","seq":3,"epoch":"9c1f04a2d3b6e857","kind":"converged"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := fleet.ParseEventReport(b)
		if err != nil {
			return
		}
		again := roundTrip(t, r, fleet.ParseEventReport)
		if !r.Time.Equal(again.Time) {
			t.Fatalf("round trip changed the time: %v, %v", r.Time, again.Time)
		}
		r.Time, again.Time = time.Time{}, time.Time{}
		if !reflect.DeepEqual(r, again) {
			t.Fatalf("round trip changed the report:\n%+v\n%+v", r, again)
		}
	})
}

func TestParseOnline(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
		ok   bool
	}{
		{"true", true, true}, {"false", false, true}, {" true\n", true, true},
		{`"true"`, false, false}, {"TRUE", false, false}, {"1", false, false}, {"", false, false}, {"truex", false, false},
	} {
		got, err := fleet.ParseOnline([]byte(tc.in))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseOnline(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && (!errors.Is(err, fleet.ErrMalformed) || !strings.Contains(err.Error(), "true or false")) {
			t.Errorf("ParseOnline(%q): error %q should match ErrMalformed and say what is expected", tc.in, err)
		}
	}
}

func FuzzParseOnline(f *testing.F) {
	for _, s := range []string{"true", "false", " false ", `"true"`, "", "null", "tru\u0065"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		on, err := fleet.ParseOnline(b)
		if err != nil {
			return
		}
		again, err := fleet.ParseOnline([]byte(strconv.FormatBool(on)))
		if err != nil || again != on {
			t.Fatalf("%q parsed as %v, whose encoding parses as %v, %v", b, on, again, err)
		}
	})
}

// roundTrip encodes v, parses it back, and checks that encoding is then
// stable.
func roundTrip[T any](t *testing.T, v T, parse func([]byte) (T, error)) T {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("parsed value does not encode: %v\n%+v", err, v)
	}
	again, err := parse(b)
	if err != nil {
		t.Fatalf("encoding of a parsed value does not parse: %v\n%s", err, b)
	}
	b2, err := json.Marshal(again)
	if err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("encoding is not stable (%v):\n%s\n%s", err, b, b2)
	}
	return again
}

// sameJSON reports whether a and b hold the same JSON value; absent and
// null are the same.
func sameJSON(t *testing.T, a, b json.RawMessage) bool {
	t.Helper()
	var va, vb any
	if len(a) > 0 {
		if err := json.Unmarshal(a, &va); err != nil {
			t.Fatalf("raw JSON %q: %v", a, err)
		}
	}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &vb); err != nil {
			t.Fatalf("raw JSON %q: %v", b, err)
		}
	}
	return reflect.DeepEqual(va, vb)
}
