#!/bin/sh
# mkdeb.sh BINARY DEBARCH VERSION OUTDIR: builds OUTDIR/ternd_VERSION_DEBARCH.deb
# with Debian's own dpkg-deb. Reproducible: every file's time is
# $SOURCE_DATE_EPOCH (default: the last commit's), owners are root.
set -eu
bin=$1 arch=$2 version=$3 out=$4
here=$(cd "$(dirname "$0")" && pwd)
: "${SOURCE_DATE_EPOCH:=$(git -C "$here" log -1 --format=%ct 2>/dev/null || echo 0)}"
export SOURCE_DATE_EPOCH

root=$(mktemp -d)
chmod 0755 "$root"
trap 'rm -rf "$root"' EXIT
install -D -m 0755 "$bin" "$root/usr/bin/ternd"
install -D -m 0644 "$here/systemd/ternd.service" "$root/lib/systemd/system/ternd.service"
install -D -m 0644 "$here/systemd/tern-provision.service" "$root/lib/systemd/system/tern-provision.service"
install -D -m 0640 "$here/ternd.yaml" "$root/etc/tern/ternd.yaml"
install -D -m 0644 "$here/mosquitto/acl.conf" "$root/usr/share/doc/ternd/examples/mosquitto-acl.conf"
install -d "$root/DEBIAN"
for s in postinst prerm postrm; do install -m 0755 "$here/deb/$s" "$root/DEBIAN/$s"; done
echo /etc/tern/ternd.yaml > "$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: ternd
Version: $version
Architecture: $arch
Maintainer: tern maintainers <tern@tern-iot.invalid>
Installed-Size: $size
Section: admin
Priority: optional
Homepage: https://github.com/tern-iot/tern
Description: tern device agent for IoT fleets
 ternd holds the desired state of a board, senses its GPIO, I2C and serial
 devices, plans and runs sandboxed WebAssembly jobs to converge on it, keeps
 working offline, and syncs targets and modules with the fleet over MQTT.
 It runs as a hardened systemd service under its own user and updates itself
 from signed releases, with rollback.
CONTROL
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$out"
dpkg-deb --root-owner-group -Zxz --build "$root" "$out/ternd_${version}_${arch}.deb" >/dev/null
echo "$out/ternd_${version}_${arch}.deb"
