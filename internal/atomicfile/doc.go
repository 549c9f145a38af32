// Package atomicfile writes files so that a power cut leaves either the old
// bytes or all of the new ones, never a torn or empty file: the agent's
// update state, the binary slots of a self-update and the configuration
// that first-boot provisioning writes.
//
// The recipe is the usual one for Linux file systems: write a temporary
// file beside the target, fsync it, set its mode (and group), rename it
// over the target, and fsync the directory so that the rename itself is on
// the disk.
package atomicfile
