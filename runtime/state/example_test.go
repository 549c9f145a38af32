package state_test

import (
	"fmt"

	"github.com/tern-iot/tern/runtime/state"
)

func ExampleSatisfies() {
	current, _ := state.Parse([]byte(`{
		"relays": {"pump": {"on": false, "pin": 17}, "fan": {"on": true}},
		"debug": true
	}`))
	// The target names only what the operator cares about: the pump must
	// be on and the debug key must be gone. The fan is left alone.
	target, _ := state.Parse([]byte(`{"relays": {"pump": {"on": true}}, "debug": null}`))

	fmt.Println(state.Satisfies(current, target))
	fmt.Println(state.Unsatisfied(current, target))
	// Output:
	// false
	// [/debug /relays/pump/on]
}

func ExampleMergePatch() {
	doc, _ := state.Parse([]byte(`{"relays": {"pump": {"on": false}}, "debug": true}`))
	patch, _ := state.Parse([]byte(`{"relays": {"pump": {"on": true}}, "debug": null}`))

	doc = state.MergePatch(doc, patch)
	fmt.Printf("%s\n", state.Canonical(doc))
	fmt.Println(state.Satisfies(doc, patch))
	// Output:
	// {"relays":{"pump":{"on":true}}}
	// true
}

func ExamplePattern_Match() {
	pat, _ := state.ParsePattern("/rooms/:room/heater")

	params, ok := pat.Match(state.MustPointer("/rooms/kitchen/heater"))
	fmt.Println(params["room"], ok)

	_, ok = pat.Match(state.MustPointer("/rooms/kitchen/heater/power"))
	fmt.Println(ok)
	// Output:
	// kitchen true
	// false
}

func ExampleSet() {
	// Missing objects on the way are created.
	doc, _ := state.Set(nil, state.MustPointer("/relays/pump/on"), true)
	// "-" appends to an array.
	doc, _ = state.Set(doc, state.MustPointer("/log"), []any{})
	doc, _ = state.Set(doc, state.MustPointer("/log/-"), "pump on")
	fmt.Printf("%s\n", state.Canonical(doc))

	_, err := state.Set(doc, state.MustPointer("/relays/pump/on/level"), 1.0)
	fmt.Println(err)
	// Output:
	// {"log":["pump on"],"relays":{"pump":{"on":true}}}
	// state: path goes through a value that is not an object or array: set /relays/pump/on/level: "/relays/pump/on" is a bool
}

func ExampleParsePointer() {
	p, _ := state.ParsePointer("/a~1b/m~0n/0")
	fmt.Printf("%q %s\n", []string(p), p)
	// Output:
	// ["a/b" "m~n" "0"] /a~1b/m~0n/0
}
