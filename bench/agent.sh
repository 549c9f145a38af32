#!/usr/bin/env bash
# agent: what ternd costs a board, an old build against a new one, measured
# side by side the same way every time (issue 14). Usage:
#
#   bench/agent.sh [OLD [NEW]]     OLD: a git ref (default HEAD); NEW: a git
#                                  ref (default: the working tree); also
#                                  from the environment (make bench-agent
#                                  OLD=main NEW=...)
#
# Both ternds run the Go relay module (plugins/relay, built once from NEW's
# tree, the same bytes for both) on the sim board, against one local broker
# (mosquitto if installed, else `tern broker`) holding the retained target
# {"relays":{"heater":true,"fan":true}}, with boot_grace 0s: a start is
# measured up to converging, not through the wait for retained targets.
# Each round runs old and new alternately (which goes first alternates
# too, so a machine that slows down or speeds up meanwhile favours
# neither), and the table gives each side's median over the rounds:
#
#   rss first start   VmRSS (/proc/PID/status) SETTLE s after ternd logs
#                     "converged", started with an empty data directory
#                     (no store, empty compilation cache: the compile child
#                     runs)
#   rss cached start  the same, started again on that directory (stored
#                     target, code and compiled code)
#   start→converged   exec to ternd's own "converged" log line (its time=,
#                     in ms), warm cache and stored target; STARTS starts
#                     per side per round
#   rss after idle   the cached start's VmRSS at the end of the idle window
#   idle cpu, wakeups over IDLE s from SETTLE s after converging, on the
#                     cached start: delta(utime+stime) of /proc/PID/stat /
#                     (IDLE × CLK_TCK), as % of one core; the delta of the
#                     sum over /proc/PID/task/*/status of voluntary and
#                     nonvoluntary_ctxt_switches / IDLE (threads that exit
#                     meanwhile are not counted)
#   go benchmarks     runtime/internal/wasmhost's benchmarks matching BENCH
#                     (the gpio_write one), -count 1 per round, ns/ metrics
#
# Environment: ROUNDS (5), STARTS (3), SETTLE (10), IDLE (30), BENCH
# ('GPIO|Gpio|GuestToHost$'; empty skips the Go benchmarks), BENCHTIME (1s).
# Needs go, git, GNU date, and wat2wasm for the Go benchmarks; mosquitto is
# optional. Everything it starts is stopped, and its temporary directory
# removed, on every exit.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-5}
STARTS=${STARTS:-3}
SETTLE=${SETTLE:-10}
IDLE=${IDLE:-30}
BENCH=${BENCH-GPIO|Gpio|GuestToHost\$}
BENCHTIME=${BENCHTIME:-1s}
OLD=${1:-${OLD:-HEAD}}
NEW=${2:-${NEW:-}}

die() { echo "bench/agent.sh: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || die "$1 is not installed: $2"; }
case "${1:-}" in -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0;; esac
need go "install Go (see README.md)"
need git "sudo apt-get install -y git"
need getconf "it comes with libc (libc-bin)"
date -u -d 2026-01-01T00:00:00.001Z +%s%3N >/dev/null 2>&1 || die "GNU date is needed (coreutils)"
[ -z "$BENCH" ] || need wat2wasm "sudo apt-get install -y wabt (or BENCH= to skip the Go benchmarks)"
for v in ROUNDS STARTS SETTLE IDLE; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive number, got '${!v}'"
done
[ -r /proc/self/status ] || die "needs Linux's /proc"

work=$(mktemp -d "${TMPDIR:-/tmp}/tern-bench-agent.XXXXXX")
pids=() # the broker and the ternd under measurement
cleanup() {
	for p in ${pids[@]+"${pids[@]}"}; do kill "$p" 2>/dev/null || true; done
	for p in ${pids[@]+"${pids[@]}"}; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE
say() { echo "bench/agent.sh: $*" >&2; }

now_ms() {
	if [ -n "${EPOCHREALTIME:-}" ]; then
		local t=${EPOCHREALTIME//[!0-9]/}
		echo $((t / 1000))
	else
		date +%s%3N
	fi
}

# source REF DIR: the tree of REF (the working tree if REF is empty).
source_of() {
	if [ -z "$1" ]; then
		echo "$repo"
		return
	fi
	git -C "$repo" rev-parse -q --verify "$1^{commit}" >/dev/null || die "$1 is not a git ref of $repo"
	mkdir -p "$2/src"
	git -C "$repo" archive "$1" | tar -x -C "$2/src"
	echo "$2/src"
}

label_of() {
	if [ -z "$1" ]; then echo "working tree"; else echo "$1 ($(git -C "$repo" rev-parse --short "$1^{commit}"))"; fi
}

for side in old new; do
	ref=$OLD
	[ $side = new ] && ref=$NEW
	mkdir -p "$work/$side"
	src=$(source_of "$ref" "$work/$side")
	echo "$src" > "$work/$side/srcdir"
	label_of "$ref" > "$work/$side/label"
	say "building ternd $side: $(cat "$work/$side/label")"
	(cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w -buildid=' -o "$work/$side/ternd" ./cmd/ternd) ||
		die "ternd does not build at $(cat "$work/$side/label")"
done
newsrc=$(cat "$work/new/srcdir")
say "building tern and the relay module from the new tree"
(cd "$newsrc" && go build -o "$work/tern" ./cmd/tern) || die "tern does not build"
(cd "$newsrc" && GOOS=wasip1 GOARCH=wasm CGO_ENABLED=0 go build -trimpath -buildmode=c-shared -o "$work/relay.wasm" ./plugins/relay) ||
	die "the relay module does not build"

# The broker, on a free port.
port=18870
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
broker=tcp://127.0.0.1:$port
if command -v mosquitto >/dev/null; then
	printf 'listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port" > "$work/mosquitto.conf"
	mosquitto -c "$work/mosquitto.conf" > "$work/broker.log" 2>&1 &
else
	say "mosquitto is not installed; using tern broker"
	"$work/tern" broker --listen "127.0.0.1:$port" > "$work/broker.log" 2>&1 &
fi
pids+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { cat "$work/broker.log" >&2; die "the broker did not start on port $port"; }
"$work/tern" push --broker "$broker" --fleet bench --device pi-bench --version 1 '{"relays":{"heater":true,"fan":true}}' > /dev/null

for side in old new; do
	cat > "$work/$side/ternd.yaml" <<-EOF
		device: pi-bench
		fleet: bench
		broker: $broker
		board: sim
		data_dir: $work/$side/data
		boot_grace: 0s
		log_level: info
		modules:
		  - name: relay
		    path: $work/relay.wasm
		    grants:
		      gpio: [GPIO17, GPIO27]
		    config:
		      lines: {heater: GPIO17, fan: GPIO27}
	EOF
done

mkdir -p "$work/res"
record() { echo "$3" >> "$work/res/$1.$2"; } # metric side value
tck=$(getconf CLK_TCK)
ticks() { local s; s=$(cat "/proc/$1/stat") && s=${s##*) } && set -- $s && echo $((${12} + ${13})); }
switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^(non)?voluntary_ctxt_switches/ {n += $2} END {print n + 0}'; }

# start SIDE: runs ternd; sets apid and t0 (ms).
start() {
	t0=$(now_ms)
	"$work/$1/ternd" run --config "$work/$1/ternd.yaml" > "$work/$1/log" 2>&1 &
	apid=$!
	pids+=($apid)
}

# converged SIDE: waits for ternd's "converged" line (2 min at most) and
# prints its time in ms. The time is ternd's own (its log's time=), so
# the wait may be coarse: polling every 10 ms, the grep and sleep
# processes took enough of the 2 cores to slow the start measured by a
# third (~100 ms became ~135).
converged() {
	local line
	for _ in $(seq 1200); do
		sleep 0.1
		if line=$(grep -m1 'msg=converged' "$work/$1/log"); then
			line=${line#time=}
			date -u -d "${line%% *}" +%s%3N
			return
		fi
		kill -0 "$apid" 2>/dev/null || { cat "$work/$1/log" >&2; die "ternd $1 exited before converging"; }
	done
	cat "$work/$1/log" >&2
	die "ternd $1 did not converge within 2 minutes"
}

stop() {
	kill "$apid" 2>/dev/null || true
	for _ in $(seq 200); do kill -0 "$apid" 2>/dev/null || break; sleep 0.05; done
	kill -9 "$apid" 2>/dev/null || true
	wait "$apid" 2>/dev/null || true
	pids=("${pids[0]}")
}

# footprint SIDE KIND: one start, RSS SETTLE s after converging; on the
# cached start also the idle window.
footprint() {
	local side=$1 kind=$2
	[ "$kind" = first ] && rm -rf "$work/$side/data"
	start "$side"
	converged "$side" > /dev/null
	sleep "$SETTLE"
	record "rss_$kind" "$side" "$(awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$apid/status")"
	if [ "$kind" = cached ]; then
		local c0 w0 c1 w1
		c0=$(ticks "$apid") w0=$(switches "$apid")
		sleep "$IDLE"
		c1=$(ticks "$apid") w1=$(switches "$apid")
		record rss_idle "$side" "$(awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$apid/status")"
		record cpu "$side" "$(awk -v d=$((c1 - c0)) -v t="$tck" -v s="$IDLE" 'BEGIN {printf "%.2f", 100 * d / (t * s)}')"
		record wakeups "$side" "$(awk -v d=$((w1 - w0)) -v s="$IDLE" 'BEGIN {printf "%.1f", d / s}')"
	fi
	stop
}

startup() { # SIDE: warm cache, stored target
	start "$1"
	local t1
	t1=$(converged "$1")
	record start "$1" $((t1 - t0))
	stop
}

gobench() { # SIDE
	(cd "$(cat "$work/$1/srcdir")" && go test -run '^$' -bench "$BENCH" -benchtime "$BENCHTIME" -count 1 ./runtime/internal/wasmhost/) > "$work/$1/bench.out" 2>&1 ||
		{ cat "$work/$1/bench.out" >&2; die "the Go benchmarks failed on the $1 tree"; }
	awk '/^Benchmark/ {name = $1; sub(/^Benchmark/, "", name); sub(/-[0-9]+$/, "", name); for (i = 3; i < NF; i += 2) if ($(i + 1) ~ /^ns\//) print name " (" $(i + 1) ")\t" $i}' "$work/$1/bench.out" >> "$work/res/bench.$1"
}

say "$ROUNDS rounds: old $(cat "$work/old/label"), new $(cat "$work/new/label"); broker $broker"
for r in $(seq "$ROUNDS"); do
	order="old new"
	[ $((r % 2)) = 0 ] && order="new old"
	say "round $r/$ROUNDS ($order)"
	for kind in first cached; do
		for side in $order; do footprint "$side" "$kind"; done
	done
	for _ in $(seq "$STARTS"); do
		for side in $order; do startup "$side"; done
	done
	if [ -n "$BENCH" ]; then
		for side in $order; do gobench "$side"; done
	fi
done

median() { [ -s "$1" ] && sort -g "$1" | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}' || echo -; }
row() { # metric label
	local o n
	o=$(median "$work/res/$1.old") n=$(median "$work/res/$1.new")
	awk -v l="$2" -v o="$o" -v n="$n" 'BEGIN {r = (o != "-" && n != "-" && o + 0 != 0) ? sprintf("%.2f", n / o) : "-"; printf "%-46s %12s %12s %8s\n", l, o, n, r}'
}
echo
echo "ternd: old = $(cat "$work/old/label"), new = $(cat "$work/new/label"); medians of $ROUNDS rounds ($((ROUNDS * STARTS)) starts for start→converged), relay module, sim board"
printf '%-46s %12s %12s %8s\n' metric old new new/old
row rss_first "rss ${SETTLE}s after converged, first start (MiB)"
row rss_cached "rss ${SETTLE}s after converged, cached start (MiB)"
row rss_idle "rss $((SETTLE + IDLE))s after converged, cached start (MiB)"
row start "start→converged, warm cache (ms)"
row cpu "idle cpu over ${IDLE}s (% of a core)"
row wakeups "idle wakeups/s over ${IDLE}s"
# The Go benchmarks, by name and unit: each to files of its own for row.
cat "$work"/res/bench.* 2>/dev/null | cut -f1 | sort -u | while IFS= read -r name; do
	key=bench$(printf '%s' "$name" | cksum | cut -d' ' -f1)
	for side in old new; do
		[ -e "$work/res/bench.$side" ] && awk -F'\t' -v n="$name" '$1 == n {print $2}' "$work/res/bench.$side" > "$work/res/$key.$side"
	done
	row "$key" "$name"
done
