package main

import (
	"encoding/json"
	"testing"

	"github.com/tern-iot/tern/sdk"
)

// The module's planning logic is plain Go and runs natively too.
func TestConfiguredCondition(t *testing.T) {
	sdk.Configure(json.RawMessage(`{"lines":{"heater":"GPIO17"}}`))
	for _, tc := range []struct {
		name   string
		target string
		want   bool
	}{
		{"heater", "true", true},
		{"heater", "false", true},
		{"heater", `"on"`, false},
		{"lamp", "true", false},
	} {
		c := sdk.NewContext(sdk.Call{Job: "set", Path: "/relays/" + tc.name, Params: map[string]string{"name": tc.name}, Target: json.RawMessage(tc.target)})
		got, err := configured(c)
		if err != nil || got != tc.want {
			t.Errorf("configured(%s=%s) = %v, %v; want %v", tc.name, tc.target, got, err, tc.want)
		}
	}
}
