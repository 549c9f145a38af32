package sdk

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
	f.Add(must(encodeTry(nil, tryOut{ok: true, method: true, steps: []TaskRef{Again("a"), Do("b", "/x").WithTarget(map[string]any{"k": 1})}})))
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, modErr, err := DecodeTry(b)
		if err != nil || modErr != nil {
			return
		}
		var out tryOut
		out.ok, out.pathFree = tr.OK, tr.PathFree
		if tr.OK && len(tr.Tasks) == 0 && tr.Effect != nil {
			out.effect = tr.Effect
		} else if tr.OK {
			out.method, out.steps = true, tr.Tasks
		}
		again, err := encodeTry(nil, out)
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

// What the host sends a module round-trips through the module's decoder.
func FuzzCall(f *testing.F) {
	f.Add(3, "/relays/heater", "name", "heater", []byte("true"), []byte(`{"a":[1,"x"]}`))
	f.Add(0, "", "", "", []byte(""), []byte("null"))
	f.Add(1, "/a~1b", "x", "é", []byte(`"q\"uote"`), []byte("-1.5e3"))
	f.Fuzz(func(t *testing.T, index int, path, pname, pval string, cur, tgt []byte) {
		var v any
		if index < 0 || len(cur) > 0 && json.Unmarshal(cur, &v) != nil || len(tgt) > 0 && json.Unmarshal(tgt, &v) != nil {
			return // not a value the state model holds
		}
		c := Call{Path: path, Current: cur, Target: tgt}
		if pname != "" {
			c.Params = map[string]string{pname: pval}
		}
		var fr frame
		if err := decodeCall(EncodeCall(nil, index, c), &fr); err != nil {
			t.Fatalf("encoded call does not decode: %v", err)
		}
		ctx := &Context{f: fr}
		if fr.index != int(uint32(index)) || ctx.Path() != path || pname != "" && ctx.Param(pname) != pval {
			t.Fatalf("call %+v decoded as index %d path %q", c, fr.index, ctx.Path())
		}
		for _, pair := range [][2]json.RawMessage{{cur, fr.cur.json()}, {tgt, fr.tgt.json()}} {
			var a, b any
			if len(pair[0]) == 0 {
				if pair[1] != nil {
					t.Fatalf("absent value came back as %s", pair[1])
				}
				continue
			}
			json.Unmarshal(pair[0], &a)
			if err := json.Unmarshal(pair[1], &b); err != nil {
				t.Fatalf("%s came back as %s: %v", pair[0], pair[1], err)
			}
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			if string(ja) != string(jb) {
				t.Fatalf("%s came back as %s", pair[0], pair[1])
			}
		}
		// Any bytes at all: the decoder returns an error, never panics.
		decodeCall(append([]byte(path), cur...), &fr)
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
