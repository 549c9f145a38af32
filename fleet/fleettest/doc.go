// Package fleettest starts MQTT brokers for tests: a real Mosquitto process
// ([Mosquitto]) and the embedded development broker ([Embedded]). Each
// returns the broker's URL and stops the broker when the test ends; the
// broker's log is printed only if the test failed.
//
// Tests of the fleet contract run against both, because the embedded broker
// is what developers use and Mosquitto is what fleets run:
//
//	for name, broker := range map[string]func(testing.TB) string{
//		"embedded":  fleettest.Embedded,
//		"mosquitto": fleettest.Mosquitto,
//	} {
//		t.Run(name, func(t *testing.T) { url := broker(t); … })
//	}
//
// A missing mosquitto binary fails the test; it never skips it.
package fleettest
