// Package devbroker is an MQTT broker that runs in the process, for
// development, the demo, the testbench and tests: `tern broker` runs one.
//
// It is an embedded nats-server with its MQTT listener (MQTT 3.1.1, QoS 0
// and 1) on JetStream, which keeps sessions and retained messages in a
// data directory ([Options].DataDir): with one, they survive a restart of
// the broker; without, a temporary directory goes at Close. It lets every
// client use every topic; [NewTLS] adds TLS and, optionally, client
// certificates. Fleets in production use Mosquitto or a NATS cluster
// (docs/mqtt.md, which lists the NATS limits the broker configures here).
//
// [Broker.Subscribe] watches what clients publish from inside the broker,
// through an in-process NATS connection, with no MQTT session to lose
// across a restart. nats-server indexes a retained message milliseconds
// after it acknowledged it; [Broker.SyncRetained] waits for that, for
// tests that publish retained and then subscribe.
//
// It is apart from package fleet, the contract both ends speak, so that
// the agent (ternd), which links fleet, does not link a broker.
package devbroker
