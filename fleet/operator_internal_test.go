package fleet

import "testing"

func TestTopicMatch(t *testing.T) {
	for _, tc := range []struct {
		filter, topic string
		want          bool
	}{
		{"tern/demo/devices/+/state", "tern/demo/devices/pi-001/state", true},
		{"tern/demo/devices/+/state", "tern/demo/devices/pi-001/events", false},
		{"tern/demo/devices/+/state", "tern/demo/devices/pi-001/state/x", false},
		{"tern/demo/devices/+/state", "tern/demo/devices/state", false},
		{"tern/demo/devices/pi-001/state", "tern/demo/devices/pi-001/state", true},
		{"tern/demo/devices/pi-001/state", "tern/demo/devices/pi-002/state", false},
		{"tern/demo/#", "tern/demo/devices/pi-001/state", true},
		{"tern/demo/#", "tern/demo", true},
		{"tern/+", "tern/demo/x", false},
		{"+", "", true},
		{"a/+", "a/", true},
	} {
		if got := topicMatch(tc.filter, tc.topic); got != tc.want {
			t.Errorf("topicMatch(%q, %q) = %v, want %v", tc.filter, tc.topic, got, tc.want)
		}
	}
}
