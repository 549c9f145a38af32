package fleet_test

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/signing"
)

const nightLayers = `[{"name":"night","when":{"window":{"from":"22:00","to":"06:00","zone":"Europe/Berlin"},"facts":{"board":"rpi4"}},"target":{"relays":{"fan":{"on":false}}}}]`

func TestTargetLayers(t *testing.T) {
	env := fleet.TargetEnvelope{Version: 7, Target: json.RawMessage(`{"relays":{"fan":{"on":true}}}`)}
	env.SetTopics(fleet.Topics{Fleet: "demo"})
	env.SetLayers(json.RawMessage(nightLayers))
	if env.Format != fleet.LayersFormat {
		t.Fatalf("SetLayers: format %d, want %d", env.Format, fleet.LayersFormat)
	}
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	got, err := fleet.ParseTargetEnvelope(b)
	if err != nil {
		t.Fatalf("ParseTargetEnvelope of an envelope with layers: %v", err)
	}
	ls, err := got.ParseLayers(fleet.GroupScope("north"))
	if err != nil || len(ls) != 1 || ls[0].ID() != "group/north/night" {
		t.Fatalf("ParseLayers: %v, %v", ls, err)
	}
	env.SetLayers(nil)
	if env.Format != fleet.Format || env.Layers != nil {
		t.Errorf("SetLayers(nil): format %d, layers %s; want format %d, none", env.Format, env.Layers, fleet.Format)
	}
}

func TestTargetLayersRefused(t *testing.T) {
	for _, tc := range []struct {
		name, payload string
		is            error
		msg           string
	}{
		{"layers in format 2", `{"format":2,"prefix":"tern","fleet":"demo","version":1,"target":{},"layers":` + nightLayers + `}`,
			fleet.ErrMalformed, `has "layers" but "format": 2; an envelope with layers is format 4`},
		{"unknown condition", `{"format":4,"prefix":"tern","fleet":"demo","version":1,"target":{},"layers":[{"name":"a","when":{"battery":"low"},"target":{}}]}`,
			fleet.ErrMalformed, `unknown field "battery"`},
		{"bad zone", `{"format":4,"prefix":"tern","fleet":"demo","version":1,"target":{},"layers":[{"name":"a","when":{"window":{"zone":"Mars/Base"}},"target":{}}]}`,
			fleet.ErrMalformed, `"layers": layer: bad layers: layer 1 (a): "when"`},
		{"format 3 is a release's", `{"format":3,"prefix":"tern","fleet":"demo","version":1,"target":{}}`,
			fleet.ErrUnsupportedFormat, "format 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := fleet.ParseTargetEnvelope([]byte(tc.payload))
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("ParseTargetEnvelope: %v, want %v saying %q", err, tc.is, tc.msg)
			}
		})
	}
}

// The signature covers the layers: dropping, changing or adding them
// breaks it, and the signed bytes have one more documented line.
func TestTargetLayersSigned(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	trust := signing.NewTrust(pub)
	env := fleet.TargetEnvelope{Version: 7, Target: json.RawMessage(`{"a":1}`)}
	env.SetTopics(fleet.Topics{Fleet: "demo"})
	env.SetLayers(json.RawMessage(`[{"name":"n","target":{"a":2}}]`))
	scope := fleet.DeviceScope("pi-001")
	if err := env.Sign(scope, priv); err != nil {
		t.Fatal(err)
	}
	if err := env.Verify(scope, trust); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	msg := "tern target 2\ntern\ndemo\ndevice/pi-001\n7\n" + `{"a":1}` + "\nlayers " + `[{"name":"n","target":{"a":2}}]` + "\n"
	if !ed25519.Verify(pub, []byte(msg), env.Sig) {
		t.Errorf("the signature is not over %q", msg)
	}
	for name, edit := range map[string]func(*fleet.TargetEnvelope){
		"dropped": func(e *fleet.TargetEnvelope) { e.Layers = nil },
		"changed": func(e *fleet.TargetEnvelope) { e.Layers = json.RawMessage(`[{"name":"n","target":{"a":3}}]`) },
	} {
		e := env
		edit(&e)
		if err := e.Verify(scope, trust); !errors.Is(err, signing.ErrBadSig) {
			t.Errorf("layers %s: Verify %v, want ErrBadSig", name, err)
		}
	}
	plain := fleet.TargetEnvelope{Format: fleet.Format, Version: 7, Target: json.RawMessage(`{"a":1}`)}
	plain.SetTopics(fleet.Topics{Fleet: "demo"})
	if err := plain.Sign(scope, priv); err != nil {
		t.Fatal(err)
	}
	plain.Layers = json.RawMessage(`[{"name":"n","target":{"a":2}}]`)
	if err := plain.Verify(scope, trust); !errors.Is(err, signing.ErrBadSig) {
		t.Errorf("layers added: Verify %v, want ErrBadSig", err)
	}
}
