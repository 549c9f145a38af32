package abi

import (
	"encoding/json"
	"testing"
)

// What a module returns is input the host must survive: the decoders of
// results take any bytes without panicking, and what they accept re-encodes
// to the same frame.
func FuzzDecodeTry(f *testing.F) {
	f.Add([]byte{statusOK, 1, 1, 0, tagTrue})
	f.Add([]byte{statusOK, 0, 0})
	f.Add([]byte{statusError, 3, 0, 0, 0, 'b', 'a', 'd'})
	f.Add(must(EncodeTry(nil, TryOut{OK: true, Method: true, Steps: []TaskRef{{Job: "a", Path: Here}, TaskRef{Job: "b", Path: "/x"}.WithTarget(map[string]any{"k": 1})}})))
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, modErr, err := DecodeTry(b)
		if err != nil || modErr != nil {
			return
		}
		var out TryOut
		out.OK, out.PathFree = tr.OK, tr.PathFree
		if tr.OK && len(tr.Tasks) == 0 && tr.Effect != nil {
			out.Effect = tr.Effect
		} else if tr.OK {
			out.Method, out.Steps = true, tr.Tasks
		}
		again, err := EncodeTry(nil, out)
		if err != nil {
			t.Fatalf("accepted %x but cannot encode it again: %v", b, err)
		}
		if tr2, _, err := DecodeTry(again); err != nil || tr2.OK != tr.OK || len(tr2.Tasks) != len(tr.Tasks) {
			t.Fatalf("round trip of %x: %+v vs %+v (%v)", b, tr, tr2, err)
		}
	})
}

func FuzzDecodeValue(f *testing.F) {
	f.Add([]byte{statusOK, tagNumber, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f})
	f.Add([]byte{statusOK, tagJSON, 2, 0, 0, 0, '{', '}'})
	f.Add([]byte{statusOK, tagString, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, modErr, err := DecodeValue(b)
		if err == nil && modErr == nil && v != nil && !json.Valid(v) {
			t.Fatalf("value %q from %x is not JSON", v, b)
		}
	})
}

// Manifests come from modules: any JSON either validates or is refused
// with an error, never a panic.
func FuzzManifest(f *testing.F) {
	f.Add([]byte(`{"name":"relay","version":"0.1.0","abi":1,"jobs":[{"name":"set","path":"/relays/:name","op":"any"}],"sensors":[{"name":"s","path":"/relays","interval_ms":1000}]}`))
	f.Add([]byte(`{"name":"m","version":"1","abi":1,"jobs":[{"name":"j","path":"/x","op":"update","kind":"method","effect":"target"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Manifest
		if json.Unmarshal(b, &m) != nil {
			return
		}
		if err := m.Validate(); err == nil && (m.Name == "" || m.ABI != ABIVersion) {
			t.Fatalf("manifest %s validated", b)
		}
	})
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
