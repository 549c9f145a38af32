// Package signing holds operator keys and ed25519 signatures: the key files
// `tern keys` writes, key ids, and a device's trust store. Modules (and,
// with the fleet issue, targets) are signed with them.
package signing
