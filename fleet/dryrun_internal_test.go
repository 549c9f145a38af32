package fleet

import (
	"encoding/json"
	"strings"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// message is a paho.Message with a topic and a payload only.
type message struct {
	paho.Message
	topic   string
	payload []byte
}

func (m message) Topic() string   { return m.topic }
func (m message) Payload() []byte { return m.payload }

// A flood of dry-run requests: the device keeps maxPendingDryRuns, drops
// the rest before parsing them, and keeps taking them once the consumer
// took the ones before. A request made for another fleet, or malformed,
// is not kept.
func TestDryRunInboxBound(t *testing.T) {
	d := newTestDevice(t, "floor")
	topic := d.opts.Topics.GroupDryRun("floor")
	handler := d.onDryRun(GroupScope("floor"))
	req := func(fleet string) []byte {
		b, _ := json.Marshal(DryRunRequest{Format: Format, Prefix: "tern", Fleet: fleet, ID: "dr-1", Version: 1, Target: json.RawMessage(`{}`)})
		return b
	}
	handler(nil, message{topic: topic, payload: req("prod")})
	handler(nil, message{topic: topic, payload: []byte(`{"format":2}`)})
	handler(nil, message{topic: topic, payload: nil})
	if got := d.TakeDryRuns(); len(got) != 0 {
		t.Fatalf("kept %d requests made for another fleet, malformed or empty", len(got))
	}
	for range 1000 {
		handler(nil, message{topic: topic, payload: req("demo")})
	}
	got := d.TakeDryRuns()
	if len(got) != maxPendingDryRuns || got[0].Scope != "group/floor" || got[0].ID != "dr-1" {
		t.Fatalf("after a flood of 1,000: kept %d (%+v), want %d", len(got), got, maxPendingDryRuns)
	}
	select {
	case <-d.DryRunsWaiting():
	default:
		t.Error("no wake-up for the requests kept")
	}
	handler(nil, message{topic: topic, payload: req("demo")})
	if got := d.TakeDryRuns(); len(got) != 1 {
		t.Errorf("after the consumer took them: %d kept, want 1", len(got))
	}
	routes := d.dryRunRoutes()
	if len(routes) != 2 || routes[d.opts.Topics.DeviceDryRun("pi-001")] != "device/pi-001" || !strings.HasSuffix(topic, "/groups/floor/dryrun") {
		t.Errorf("routes: %v", routes)
	}
}
