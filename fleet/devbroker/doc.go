// Package devbroker is an MQTT broker that runs in the process, for
// development, the demo, the testbench and tests: `tern broker` runs one.
// It lets every client use every topic and keeps sessions and retained
// messages in memory only; fleets in production use Mosquitto or a
// clustered broker (docs/mqtt.md).
//
// It is apart from package fleet, the contract both ends speak, so that
// the agent (ternd), which links fleet, does not link a broker: mochi-mqtt
// and its dependencies cost ternd about 2 ms of package initialisation
// and half a MiB of heap at every start.
package devbroker
