// Package wasmtest writes modules by hand, in WebAssembly text, for tests:
// a skeleton that implements the ABI (sdk/ABI.md) with no SDK, whose exports
// a test replaces with misbehaviour. wat2wasm (Debian's wabt) assembles
// them; a missing tool fails the test.
package wasmtest
