// Package firmware is what goes onto a board: cross builds of ternd, and
// (with the firmware issue) the systemd unit, packages and self-update.
//
// Today it holds the test that runs the cross-built ternd for arm64 and
// armv7 (and armv6) under qemu-user, the way it runs on a Raspberry Pi:
// `make cross` builds the same binaries into dist/.
package firmware
