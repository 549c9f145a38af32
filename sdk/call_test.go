package sdk

import (
	"encoding/json"
	"testing"

	"github.com/tern-iot/tern/sdk/abi"
)

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
		var fr abi.Frame
		if err := abi.DecodeCall(abi.EncodeCall(nil, index, c), &fr); err != nil {
			t.Fatalf("encoded call does not decode: %v", err)
		}
		ctx := &Context{f: fr}
		if fr.Index != int(uint32(index)) || ctx.Path() != path || pname != "" && ctx.Param(pname) != pval {
			t.Fatalf("call %+v decoded as index %d path %q", c, fr.Index, ctx.Path())
		}
		for _, pair := range [][2]json.RawMessage{{cur, fr.Current.JSON()}, {tgt, fr.Target.JSON()}} {
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
		abi.DecodeCall(append([]byte(path), cur...), &fr)
	})
}
