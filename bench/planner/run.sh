#!/usr/bin/env bash
# The planner benchmark: tern and Mahler 4.1.5 on the problems of
# PROBLEMS.md, interleaved in one run. Needs Go, Node and npm. Flags go to
# main.go (-rounds, -problems, ...; go run ./bench/planner -h).
set -euo pipefail
cd "$(dirname "$0")"
command -v node >/dev/null || { echo "bench/planner: node is needed to run Mahler (apt-get install nodejs npm)" >&2; exit 1; }
(cd mahler && npm ci --silent --no-audit --no-fund)
cd ../..
# The Node side's pipe protocol, before the run relies on it.
go test -count=1 -tags mahler -run '^TestMahler$' ./bench/planner
# One core for tern, as on a small board and as Node runs Mahler's search.
GOMAXPROCS=1 exec go run ./bench/planner "$@"
