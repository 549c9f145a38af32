#!/usr/bin/env bash
# observability: what ternd's metrics cost an idle, converged device
# (issue 19), measured side by side. Usage:
#
#   bench/observability.sh
#
# Three ternds built from the working tree run at once, each the Go relay
# module on the sim board against one local mosquitto holding its
# retained target {"relays":{"heater":true,"fan":true}}:
#
#   off       no metrics: section (the state report's summary only)
#   textfile  metrics: {textfile: …, interval: 1s} (the least interval:
#             the worst case; the default is 15s)
#   listen    metrics: {listen: 127.0.0.1:PORT}, scraped every second
#             (GET /metrics with bash's /dev/tcp; the scraper's own CPU
#             is not counted)
#
# Once all three converged and SETTLE s passed, each round measures the
# three over the same IDLE s window (interleaved: a machine that slows
# down or speeds up meanwhile slows all three), as the delta of the time
# on CPU of its threads, in ns (the first field of
# /proc/PID/task/*/schedstat, summed; clock ticks of /proc/PID/stat are
# too coarse for an idle ternd: 1 to 5 ticks in 20 s); the table gives
# each one's CPU as % of a core (median over ROUNDS rounds) and its ratio
# to off.
#
# Environment: ROUNDS (5), SETTLE (5), IDLE (30). Needs go, mosquitto.
# Everything it starts is stopped, and its temporary directory removed,
# on every exit.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-5}
SETTLE=${SETTLE:-5}
IDLE=${IDLE:-30}
die() { echo "bench/observability.sh: $*" >&2; exit 1; }
say() { echo "bench/observability.sh: $*" >&2; }
case "${1:-}" in -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0;; esac
command -v go >/dev/null || die "go is not installed"
command -v mosquitto >/dev/null || die "mosquitto is not installed: sudo apt-get install -y mosquitto"
for v in ROUNDS SETTLE IDLE; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive number, got '${!v}'"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/tern-bench-obs.XXXXXX")
pids=()
cleanup() {
	for p in ${pids[@]+"${pids[@]}"}; do kill "$p" 2>/dev/null || true; done
	for p in ${pids[@]+"${pids[@]}"}; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

say "building ternd, tern and the relay module"
(cd "$repo" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$work/ternd" ./cmd/ternd && go build -o "$work/tern" ./cmd/tern &&
	GOOS=wasip1 GOARCH=wasm CGO_ENABLED=0 go build -trimpath -buildmode=c-shared -o "$work/relay.wasm" ./plugins/relay) || die "build failed"

free_port() {
	local p=$1
	while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
	echo "$p"
}
port=$(free_port 18970)
printf 'listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port" > "$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" > "$work/broker.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
broker=tcp://127.0.0.1:$port
mport=$(free_port $((port + 1)))

sides=(off textfile listen)
declare -A apid
for side in "${sides[@]}"; do
	"$work/tern" push --broker "$broker" --fleet bench --device "pi-$side" --version 1 '{"relays":{"heater":true,"fan":true}}' > /dev/null
	metrics=""
	case $side in
	textfile) metrics="metrics: {textfile: $work/$side.prom, interval: 1s}" ;;
	listen) metrics="metrics: {listen: \"127.0.0.1:$mport\"}" ;;
	esac
	cat > "$work/$side.yaml" <<-EOF
		device: pi-$side
		fleet: bench
		broker: $broker
		board: sim
		data_dir: $work/$side
		cache_dir: $work/cache-$side
		boot_grace: 0s
		$metrics
		modules:
		  - name: relay
		    path: $work/relay.wasm
		    grants: {gpio: [GPIO17, GPIO27]}
		    config: {lines: {heater: GPIO17, fan: GPIO27}}
	EOF
	"$work/ternd" run --config "$work/$side.yaml" > "$work/$side.log" 2>&1 &
	apid[$side]=$!
	pids+=($!)
done
for side in "${sides[@]}"; do
	for _ in $(seq 1200); do
		grep -q 'msg=converged' "$work/$side.log" && break
		kill -0 "${apid[$side]}" 2>/dev/null || { cat "$work/$side.log" >&2; die "ternd $side exited"; }
		sleep 0.1
	done
	grep -q 'msg=converged' "$work/$side.log" || { cat "$work/$side.log" >&2; die "ternd $side did not converge"; }
done
say "all three converged; scraping 127.0.0.1:$mport/metrics every second"
(
	while sleep 1; do
		exec 3<>"/dev/tcp/127.0.0.1/$mport" || continue
		printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
		cat <&3 > "$work/scrape.last"
		exec 3<&-
	done
) &
pids+=($!)
sleep "$SETTLE"
grep -q '^ternd_converged 1' "$work/scrape.last" || die "/metrics did not answer: $(head -c 300 "$work/scrape.last")"
grep -q '^ternd_converged 1' "$work/textfile.prom" || die "the textfile was not written"

oncpu() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{n += $1} END {printf "%d", n}'; }
declare -A res
for r in $(seq "$ROUNDS"); do
	declare -A before
	for side in "${sides[@]}"; do before[$side]=$(oncpu "${apid[$side]}"); done
	sleep "$IDLE"
	for side in "${sides[@]}"; do res[$side]+="$(( $(oncpu "${apid[$side]}") - before[$side] )) "; done
	say "round $r, ns on CPU: $(for s in "${sides[@]}"; do echo -n "$s=$(echo ${res[$s]} | awk '{print $NF}') "; done)"
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
off=$(echo "${res[off]}" | median)
printf '%-10s %14s %8s %s\n' side "cpu % of core" "vs off" "ms on CPU per round"
for side in "${sides[@]}"; do
	m=$(echo "${res[$side]}" | median)
	awk -v m="$m" -v off="$off" -v idle="$IDLE" -v side="$side" -v all="${res[$side]}" \
		'BEGIN {n = split(all, a, " "); ms = ""; for (i = 1; i <= n; i++) ms = ms sprintf("%.1f ", a[i]/1e6)
		        printf "%-10s %14.4f %8s %s\n", side, 100*m/(idle*1e9), (off > 0 ? sprintf("%.2f", m/off) : "-"), ms}'
done
