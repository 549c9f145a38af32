// Package firmware is what goes onto a board: the systemd units
// (systemd/), the default configuration (ternd.yaml), the Debian package's
// maintainer scripts (deb/) and the script that builds it with dpkg-deb
// (mkdeb.sh), install.sh for boards without dpkg, the size budget of the
// release builds (size-budget.txt), and the Mosquitto ACL (mosquitto/).
// `make dist` puts them together; docs/install.md is the user's side.
//
// Its tests run the real things: the cross-built ternd for arm64 and armv7
// under qemu-user, converging against a broker on loopback; the .deb
// installed with dpkg --root into a scratch root and its units checked by
// systemd-analyze; install.sh into a scratch root; self-updates of a
// running ternd over MQTT (good, badly signed, failing its health check);
// and power cuts (SIGKILL) at every step of a swap and a rollback.
//
// The self-update's on-disk protocol is package firmware/update.
package firmware
