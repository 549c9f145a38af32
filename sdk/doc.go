// Package sdk is the guest SDK for tern job modules.
//
// A module is a WebAssembly reactor built from plain Go:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o relay.wasm ./plugins/relay
//
// It registers itself in init (a reactor's main is never called):
//
//	func init() {
//		sdk.Module("relay", "0.1.0")
//		sdk.Job("set", "/relays/:name", sdk.Any, sdk.Action{Run: set})
//		sdk.Sensor("relays", "/relays", time.Second, sense)
//	}
//
// An Action has three parts, as in balena's Mahler: Condition and Effect are
// pure and are evaluated by the host's planner on a copy of the state, with
// every hardware call refused; Run does the I/O, with access only to the
// resources the device granted to the module. The default Condition is
// "always", the default Effect is "the path becomes its target value".
//
// The ABI's types and wire codec are in package sdk/abi, which the host
// imports too (and never this package): a call is decoded and an answer
// encoded by the same code that ternd uses on the other side. The names a
// module uses (Op and Update, Create, Delete, Any; Call, TaskRef, Value,
// Manifest, the Errno values, the Max* bounds) are repeated here as
// aliases, so a module imports only sdk.
//
// The files without a build constraint (registration, Context) compile
// everywhere. The exports and host imports exist only under GOOS=wasip1;
// elsewhere, hardware calls reach the board package sdktest gives them,
// which is how a module's own tests run it. See ABI.md for the wire
// contract other languages can implement.
package sdk
