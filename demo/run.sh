#!/usr/bin/env bash
# The tern demo: an embedded broker, one ternd on a simulated Raspberry Pi
# running the relay module, a target pushed over MQTT, and a watch that
# exits 0 once the device reports the target reached.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
PORT=${DEMO_PORT:-18830}
BROKER=tcp://127.0.0.1:$PORT
TIMEOUT=${DEMO_TIMEOUT:-60s}
work=.cache/demo
rm -rf "$work" && mkdir -p "$work"
sed "s|tcp://127.0.0.1:18830|$BROKER|" demo/ternd.yaml > demo/.ternd.yaml

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -f demo/.ternd.yaml
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "starting the development broker on $BROKER"
"$BIN/tern" broker --listen "127.0.0.1:$PORT" > "$work/broker.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q listening "$work/broker.log" && break; sleep 0.1; done
grep -q listening "$work/broker.log" || { cat "$work/broker.log"; echo "demo: the broker did not start (is port $PORT taken? set DEMO_PORT)"; exit 1; }

say "starting ternd (device pi-001, simulated board, relay module)"
"$BIN/ternd" run --config demo/.ternd.yaml > "$work/ternd.log" 2>&1 &
pids+=($!)

say "pushing target {\"relays\":{\"heater\":true,\"fan\":true}}"
VERSION=$(date +%s%3N)
"$BIN/tern" push --broker "$BROKER" --fleet demo --device pi-001 --version "$VERSION" '{"relays":{"heater":true,"fan":true}}'

say "watching pi-001 until it reports the target reached (timeout $TIMEOUT)"
if "$BIN/tern" watch --broker "$BROKER" --fleet demo --device pi-001 --until-converged --min-version "$VERSION" --timeout "$TIMEOUT"; then
	say "converged: pi-001 switched both relays on. ternd's log:"
	sed 's/^/  /' "$work/ternd.log"
else
	code=$?
	echo "demo: pi-001 did not converge; ternd's log:" >&2
	sed 's/^/  /' "$work/ternd.log" >&2
	exit "$code"
fi
