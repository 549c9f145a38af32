package fleet_test

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/tern-iot/tern/fleet"
)

func TestCombineTargets(t *testing.T) {
	for _, tc := range []struct {
		name    string
		targets []string // lowest precedence first; "" is a source without a target
		want    string
	}{
		{"nothing", nil, `{}`},
		{"one", []string{`{"a":1}`}, `{"a":1}`},
		{"later wins per key", []string{`{"a":1,"b":2}`, `{"b":3}`}, `{"a":1,"b":3}`},
		{"objects merge recursively", []string{`{"r":{"x":1,"y":{"z":1}}}`, `{"r":{"y":{"w":2}}}`}, `{"r":{"x":1,"y":{"w":2,"z":1}}}`},
		{"a null overrides too (the agent then deletes the key)", []string{`{"a":1,"b":2}`, `{"a":null}`}, `{"a":null,"b":2}`},
		{"a value replaces an object", []string{`{"r":{"x":1}}`, `{"r":5}`}, `{"r":5}`},
		{"an object replaces a value", []string{`{"r":5}`, `{"r":{"x":1}}`}, `{"r":{"x":1}}`},
		{"a source without a target", []string{`{"a":1}`, "", `{"b":2}`}, `{"a":1,"b":2}`},
		{"key order does not count", []string{`{"b":1,"a":2}`}, `{"a":2,"b":1}`},
	} {
		var in []json.RawMessage
		for _, s := range tc.targets {
			if s == "" {
				in = append(in, nil)
			} else {
				in = append(in, json.RawMessage(s))
			}
		}
		got, err := fleet.CombineTargets(in...)
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: %s, %v; want %s", tc.name, got, err, tc.want)
		}
	}
	if _, err := fleet.CombineTargets(json.RawMessage(`{"a":`)); err == nil {
		t.Error("a broken target combined")
	}
}

func TestCombinedVersion(t *testing.T) {
	if v, err := fleet.CombinedVersion(3, 4, 5); v != 12 || err != nil {
		t.Errorf("3+4+5 = %d, %v", v, err)
	}
	if v, err := fleet.CombinedVersion(); v != 0 || err != nil {
		t.Errorf("no sources: %d, %v", v, err)
	}
	max := make([]uint64, 2048) // the device and 2047 groups, each at the ceiling
	for i := range max {
		max[i] = fleet.MaxVersion
	}
	if _, err := fleet.CombinedVersion(max...); err != nil {
		t.Errorf("2048 sources at MaxVersion: %v", err)
	}
	if _, err := fleet.CombinedVersion(math.MaxUint64, 1); err == nil || !strings.Contains(err.Error(), "tern push --replaces") {
		t.Errorf("a sum past uint64: %v, want a refusal that says what to do", err)
	}
}

func TestScopes(t *testing.T) {
	got := fleet.Scopes("pi-1", []string{"heaters", "floor-2"})
	if want := []string{"group/heaters", "group/floor-2", "device/pi-1"}; !slices.Equal(got, want) {
		t.Errorf("scopes %v, want %v", got, want)
	}
}

// What a device in groups heaters and floor-2 pursues: the groups' targets
// in the order its configuration lists them, then its own, key by key.
func ExampleCombineTargets() {
	heaters := json.RawMessage(`{"room":{"temp":21},"relays":{"fan":false}}`)
	floor2 := json.RawMessage(`{"room":{"temp":19}}`)
	device := json.RawMessage(`{"relays":{"fan":true}}`)
	doc, _ := fleet.CombineTargets(heaters, floor2, device)
	version, _ := fleet.CombinedVersion(7, 3, 12)
	fmt.Println(fleet.Scopes("pi-1", []string{"heaters", "floor-2"}))
	fmt.Println(version, string(doc))
	// Output:
	// [group/heaters group/floor-2 device/pi-1]
	// 22 {"relays":{"fan":true},"room":{"temp":19}}
}
