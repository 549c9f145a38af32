package devbroker_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/tern-iot/tern/fleet/devbroker"
)

// With a data directory, what a fleet relies on survives a restart of the
// broker: a retained target, and a QoS 1 message queued for a device's
// persistent session while it was away.
func TestDataSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	b := start(t, dir)

	// The device subscribes in a persistent session, then goes away.
	dev := connect(t, b.URL(), "pi-001", false, nil)
	if tok := dev.Subscribe("tern/demo/devices/pi-001/cmd", 1, nil); !tok.WaitTimeout(time.Minute) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	dev.Disconnect(0)

	op := connect(t, b.URL(), "operator", true, nil)
	publish(t, op, "tern/demo/devices/pi-001/target", `{"version":3}`, true)
	publish(t, op, "tern/demo/devices/pi-001/cmd", "queued", false)
	op.Disconnect(0)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = start(t, dir)
	got := make(chan paho.Message, 2)
	deliver := func(_ paho.Client, m paho.Message) { got <- m }
	dev = connect(t, b.URL(), "pi-001", false, deliver) // the same session, resumed
	if m := recv(t, got, "the queued message"); m.Topic() != "tern/demo/devices/pi-001/cmd" || string(m.Payload()) != "queued" {
		t.Errorf("queued message: got %s %q", m.Topic(), m.Payload())
	}
	if tok := dev.Subscribe("tern/demo/devices/pi-001/target", 1, nil); !tok.WaitTimeout(time.Minute) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	if m := recv(t, got, "the retained target"); !m.Retained() || string(m.Payload()) != `{"version":3}` {
		t.Errorf("retained target: got %q (retained %v)", m.Payload(), m.Retained())
	}
	dev.Disconnect(0)
}

// Subscribe sees what MQTT clients publish, topics mapped back from NATS
// subjects ('.' in a level included); Close may come twice.
func TestSubscribe(t *testing.T) {
	b := start(t, "")
	op := connect(t, b.URL(), "operator", true, nil)
	publish(t, op, "tern/demo/devices/pi-001/target", `{"version":3}`, true)
	seen := make(chan string, 1)
	if err := b.Subscribe("tern/demo/devices/+/target", func(topic string, _ []byte) { seen <- topic }); err != nil {
		t.Fatal(err)
	}
	publish(t, op, "tern/demo/devices/pi.002/target", `{"version":4}`, true)
	select {
	case got := <-seen:
		if got != "tern/demo/devices/pi.002/target" {
			t.Errorf("Subscribe got topic %q, want tern/demo/devices/pi.002/target", got)
		}
	case <-time.After(time.Minute):
		t.Fatal("Subscribe saw nothing within a minute")
	}
	op.Disconnect(0)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func start(t *testing.T, dir string) *devbroker.Broker {
	t.Helper()
	b, err := devbroker.Open("127.0.0.1:0", devbroker.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func connect(t *testing.T, url, id string, clean bool, deliver paho.MessageHandler) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(id).
		SetCleanSession(clean).SetConnectTimeout(time.Minute).SetDefaultPublishHandler(deliver))
	if tok := c.Connect(); !tok.WaitTimeout(time.Minute) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	return c
}

func publish(t *testing.T, c paho.Client, topic, payload string, retained bool) {
	t.Helper()
	if tok := c.Publish(topic, 1, retained, payload); !tok.WaitTimeout(time.Minute) || tok.Error() != nil {
		t.Fatalf("publish on %s: %v", topic, tok.Error())
	}
}

func recv(t *testing.T, c <-chan paho.Message, what string) paho.Message {
	t.Helper()
	select {
	case m := <-c:
		return m
	case <-time.After(time.Minute):
		t.Fatalf("no %s within a minute", what)
		return nil
	}
}

// A subscription made after SyncRetained gets what was published retained
// before it, every time: nats-server indexes retained messages
// asynchronously, and without the wait some of these subscriptions come
// too early (a few in a hundred on an idle machine).
func TestSyncRetained(t *testing.T) {
	b := start(t, "")
	if err := b.SyncRetained(t.Context()); err != nil {
		t.Fatalf("before any client: %v", err)
	}
	pub := connect(t, b.URL(), "pub", true, nil)
	got := make(chan paho.Message, 1)
	sub := connect(t, b.URL(), "sub", true, func(_ paho.Client, m paho.Message) { got <- m })
	for i := range 200 {
		topic := fmt.Sprintf("tern/demo/devices/pi-%03d/state", i)
		publish(t, pub, topic, "s", true)
		if err := b.SyncRetained(t.Context()); err != nil {
			t.Fatal(err)
		}
		if tok := sub.Subscribe(topic, 0, nil); !tok.WaitTimeout(time.Minute) || tok.Error() != nil {
			t.Fatalf("subscribe: %v", tok.Error())
		}
		if m := recv(t, got, "the retained message on "+topic); !m.Retained() || m.Topic() != topic {
			t.Fatalf("got %s (retained %v), want %s retained", m.Topic(), m.Retained(), topic)
		}
	}
}

// The NATS cluster configuration docs/mqtt.md ships (firmware/nats) is one
// nats-server reads, and says what the docs say: three nodes, each routed
// to the other two, the MQTT streams on all three, payloads for any
// release.
func TestShippedClusterConfig(t *testing.T) {
	for _, node := range []string{"n1", "n2", "n3"} {
		o, err := server.ProcessConfigFile("../../firmware/nats/" + node + ".conf")
		if err != nil {
			t.Fatalf("%s.conf: %v", node, err)
		}
		switch {
		case o.ServerName != node:
			t.Errorf("%s.conf: server_name %q", node, o.ServerName)
		case o.Cluster.Name != "tern" || o.Cluster.Port != 6222 || len(o.Routes) != 2:
			t.Errorf("%s.conf: cluster %q on %d with %d routes, want tern on 6222 with 2", node, o.Cluster.Name, o.Cluster.Port, len(o.Routes))
		case !o.JetStream || o.JetStreamLimits.DefaultMaxConsumers != -1:
			t.Errorf("%s.conf: jetstream %v, default_max_consumers %d", node, o.JetStream, o.JetStreamLimits.DefaultMaxConsumers)
		case o.MQTT.Port != 1883 || o.MQTT.StreamReplicas != 3 || o.MQTT.MaxAckPending != 32:
			t.Errorf("%s.conf: mqtt port %d, stream_replicas %d, max_ack_pending %d", node, o.MQTT.Port, o.MQTT.StreamReplicas, o.MQTT.MaxAckPending)
		case o.MaxPayload != devbroker.MaxPayload:
			t.Errorf("%s.conf: max_payload %d, want %d as the embedded broker", node, o.MaxPayload, devbroker.MaxPayload)
		}
		for _, r := range o.Routes {
			if r.Host == node+".fleet.example:6222" {
				t.Errorf("%s.conf routes to itself", node)
			}
		}
	}
}

// A cluster configuration that cannot work is refused at Open, saying
// what to give.
func TestClusterOptionsRefused(t *testing.T) {
	for _, tc := range []struct {
		c    devbroker.Cluster
		want string
	}{
		{devbroker.Cluster{Node: "n1"}, "need a cluster listen address"},
		{devbroker.Cluster{Listen: "127.0.0.1:6222", Routes: []string{"127.0.0.1:6223"}}, "its own name"},
		{devbroker.Cluster{Listen: "127.0.0.1:6222", Node: "n1"}, "the others' cluster addresses"},
		{devbroker.Cluster{Listen: "6222", Node: "n1", Routes: []string{"127.0.0.1:6223"}}, "use host:port"},
		{devbroker.Cluster{Listen: "127.0.0.1:6222", Node: "n1", Routes: []string{"127.0.0.1:0"}}, "cluster route"},
		{devbroker.Cluster{Listen: "127.0.0.1:6222", Node: "n1", Routes: []string{"127.0.0.1:6223"}, Replicas: 3}, "2 nodes"},
	} {
		if _, err := devbroker.Open("127.0.0.1:0", devbroker.Options{Cluster: tc.c}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want it to say %q", tc.c, err, tc.want)
		}
	}
}
