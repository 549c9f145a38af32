// Package modules holds job modules the standard testbench scenarios
// release to their fleets: new versions of first-party plugins, written as
// an operator would write a fix.
//
//   - thermostat-fix is thermostat 0.2.0: it notices a stuck temperature
//     sensor and recovers it by power-cycling it through a GPIO line (the
//     "fixes propagate" scenario);
//   - relay-broken is relay 0.1.1, a release whose every call fails (the
//     module rollback scenario);
//   - relay-revb is relay 0.2.0, which fails on revision B boards, and
//     relay-fixed its fix, 0.2.1 (the rollout scenario; both are package
//     internal/revrelay).
//
// Scenarios name them with build: ../modules/NAME; the testbench builds
// them with internal/wasmbuild.
package modules
