package abi_test

import (
	"encoding/json"
	"fmt"

	"github.com/tern-iot/tern/sdk/abi"
)

// One tern_try, both halves: the host encodes the call, the module decodes
// it and encodes its answer, the host decodes that.
func Example() {
	call := abi.EncodeCall(nil, 0, abi.Call{
		Path:    "/relays/heater",
		Params:  map[string]string{"name": "heater"},
		Current: json.RawMessage(`{"on":false,"since":3}`),
		Target:  json.RawMessage(`{"on":true}`),
	})

	// In the module.
	var f abi.Frame
	if err := abi.DecodeCall(call, &f); err != nil {
		panic(err)
	}
	on, _ := f.Current.Get("on").Bool()
	want, _ := f.Target.Get("on").Bool()
	answer, err := abi.EncodeTry(nil, abi.TryOut{OK: on != want, Effect: f.Target})
	if err != nil {
		panic(err)
	}

	// In the host.
	t, modErr, err := abi.DecodeTry(answer)
	fmt.Println(string(f.Path), t.OK, string(t.Effect), modErr, err)
	// Output: /relays/heater true {"on":true} <nil> <nil>
}
