#!/usr/bin/env bash
# footprint: ternd's resident memory after converging, and the module's
# first-start (compile) vs cached-start (compilation cache on disk) load
# time, measured side by side in one run. Needs `make build plugins`.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-18831}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
sed -e "s|tcp://127.0.0.1:18830|tcp://127.0.0.1:$PORT|" -e "s|data_dir: .*|data_dir: $work/data|" \
	-e "s|path: ../plugins|path: $PWD/plugins|" demo/ternd.yaml > "$work/ternd.yaml"
bin/tern broker --listen 127.0.0.1:$PORT > "$work/broker.log" 2>&1 &
sleep 0.5

run_once() { # $1: label
	bin/ternd run --config "$work/ternd.yaml" > "$work/ternd-$1.log" 2>&1 &
	local pid=$!
	bin/tern push --broker tcp://127.0.0.1:$PORT --fleet demo --device pi-001 '{"relays":{"heater":true,"fan":true}}' > /dev/null
	bin/tern watch --broker tcp://127.0.0.1:$PORT --fleet demo --device pi-001 --until-converged --timeout 30s > /dev/null
	sleep 2 # settle after converging
	local rss; rss=$(awk '/VmRSS/ {print $2" "$3}' /proc/$pid/status)
	local hwm; hwm=$(awk '/VmHWM/ {print $2" "$3}' /proc/$pid/status)
	local load; load=$(grep -o 'compile=[^ ]*' "$work/ternd-$1.log" | head -1)
	echo "$1: module load ${load#compile=}, RSS after converging $rss (peak $hwm)"
	kill $pid; wait $pid 2>/dev/null || true
}
run_once first-start
run_once cached-start
