// Package modfile reads and writes what tern adds to a module's .wasm file:
// the manifest (custom section "tern.manifest", so tools read it without
// running the module) and the operator's signature (custom section
// "tern.signature", always the last section, over the SHA-256 of every
// byte before it).
package modfile
