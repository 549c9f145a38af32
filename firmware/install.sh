#!/bin/sh
# install.sh: installs ternd on a board without dpkg, as the .deb does.
#   sudo ./install.sh [ternd-linux-ARCH]
# The binary defaults to the one for this machine, next to this script
# (from make dist). DESTDIR installs into another root (an SD card's, or a
# test's) without starting anything.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root="${DESTDIR:-}"
bin="${1:-}"
if [ -z "$bin" ]; then
	case "$(uname -m)" in
	x86_64) arch=amd64 ;;
	aarch64) arch=arm64 ;;
	armv7l) arch=armv7 ;;
	armv6l) arch=armv6 ;;
	*) echo "install.sh: no ternd for $(uname -m); pass the binary" >&2; exit 1 ;;
	esac
	bin="$here/ternd-linux-$arch"
fi
[ -x "$bin" ] || { echo "install.sh: $bin is not an executable; run make dist, or pass the binary" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (sudo)" >&2; exit 1; }
src="$here"
[ -d "$here/systemd" ] || src="$here/../firmware" # from dist/ or the source tree

install -D -m 0755 "$bin" "$root/usr/bin/ternd"
install -D -m 0644 "$src/systemd/ternd.service" "$root/lib/systemd/system/ternd.service"
install -D -m 0644 "$src/systemd/tern-provision.service" "$root/lib/systemd/system/tern-provision.service"
if [ ! -e "$root/etc/tern/ternd.yaml" ]; then # never overwrite a configuration
	install -D -m 0640 "$src/ternd.yaml" "$root/etc/tern/ternd.yaml"
fi
# The same user, groups, permissions and enabling as the .deb's postinst.
DPKG_ROOT="$root" sh "$src/deb/postinst" configure
echo "install.sh: installed $("$root/usr/bin/ternd" version 2>/dev/null || echo "ternd (for another architecture)") into ${root:-/}"
