// Package devbroker is an MQTT broker that runs in the process, for
// development, the demo, the testbench and tests: `tern broker` runs one.
// It is an embedded nats-server with MQTT and JetStream, which keeps
// sessions and retained messages in a data directory. It lets every
// client use every topic; fleets in production use Mosquitto or a NATS
// cluster (docs/mqtt.md).
//
// It is apart from package fleet, the contract both ends speak, so that
// the agent (ternd), which links fleet, does not link a broker.
package devbroker
