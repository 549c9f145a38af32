// Package modules holds job modules the standard testbench scenarios
// release to their fleets: new versions of first-party plugins, written as
// an operator would write a fix.
//
//   - thermostat-fix is thermostat 0.2.0: it notices a stuck temperature
//     sensor and recovers it by power-cycling it through a GPIO line (the
//     "fixes propagate" scenario);
//   - relay-broken is relay 0.1.1, a release whose every call fails (the
//     module rollback scenario).
//
// Scenarios name them with build: ../modules/NAME; the testbench builds
// them with internal/wasmbuild.
package modules
