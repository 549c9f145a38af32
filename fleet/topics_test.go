package fleet_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tern-iot/tern/fleet"
)

func TestTopics(t *testing.T) {
	for _, tc := range []struct {
		topics fleet.Topics
		got    func(fleet.Topics) string
		want   string
	}{
		{fleet.Topics{Fleet: "demo"}, func(t fleet.Topics) string { return t.DeviceTarget("pi-001") }, "tern/demo/devices/pi-001/target"},
		{fleet.Topics{Fleet: "demo"}, func(t fleet.Topics) string { return t.GroupTarget("kitchen") }, "tern/demo/groups/kitchen/target"},
		{fleet.Topics{Fleet: "demo"}, func(t fleet.Topics) string { return t.Module("relay") }, "tern/demo/modules/relay"},
		{fleet.Topics{Fleet: "demo"}, func(t fleet.Topics) string { return t.State("pi-001") }, "tern/demo/devices/pi-001/state"},
		{fleet.Topics{Fleet: "demo"}, func(t fleet.Topics) string { return t.Events("pi-001") }, "tern/demo/devices/pi-001/events"},
		{fleet.Topics{Fleet: "demo"}, func(t fleet.Topics) string { return t.Online("pi-001") }, "tern/demo/devices/pi-001/online"},
		{fleet.Topics{Prefix: "acme/iot", Fleet: "f1"}, func(t fleet.Topics) string { return t.State("+") }, "acme/iot/f1/devices/+/state"},
	} {
		if got := tc.got(tc.topics); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestTopicsValidate(t *testing.T) {
	for _, tc := range []struct {
		topics fleet.Topics
		err    string // "" for valid
	}{
		{fleet.Topics{Fleet: "demo"}, ""},
		{fleet.Topics{Prefix: "acme/tern", Fleet: "demo"}, ""},
		{fleet.Topics{}, "fleet name: empty name"},
		{fleet.Topics{Fleet: "a/b"}, "level separator"},
		{fleet.Topics{Prefix: "/tern", Fleet: "demo"}, "topic prefix"},
		{fleet.Topics{Prefix: "tern/", Fleet: "demo"}, "topic prefix"},
		{fleet.Topics{Prefix: "$SYS", Fleet: "demo"}, `'$'`},
		{fleet.Topics{Prefix: "te#rn", Fleet: "demo"}, "wildcard"},
	} {
		err := tc.topics.Validate()
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%+v: got %v, want error containing %q", tc.topics, err, tc.err)
		}
	}
}

func TestValidID(t *testing.T) {
	for _, tc := range []struct {
		id  string
		err string
	}{
		{"pi-001", ""},
		{"Kitchen_2.north", ""},
		{strings.Repeat("a", 64), ""},
		{"", "empty name"},
		{strings.Repeat("a", 65), "limit is 64"},
		{"pi/001", "level separator"},
		{"+", "wildcard"},
		{"#", "wildcard"},
		{"pi 001", "' '"},
		{"café", "'é' at byte 3"},
		{"$dev", "'$'"},
	} {
		err := fleet.ValidID(tc.id)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ValidID(%q) = %v, want error containing %q", tc.id, err, tc.err)
		}
	}
}

func ExampleTopics() {
	topics := fleet.Topics{Fleet: "demo"} // zero Prefix: "tern"
	fmt.Println(topics.DeviceTarget("pi-001"))
	fmt.Println(topics.State(fleet.AnyDevice))
	fmt.Println(fleet.ValidID("pi/001"))
	// Output:
	// tern/demo/devices/pi-001/target
	// tern/demo/devices/+/state
	// fleet: name "pi/001" has '/' at byte 2 (the MQTT level separator); use only A-Z a-z 0-9 . _ -
}
