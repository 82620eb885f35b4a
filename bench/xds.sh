#!/bin/sh
# The issue's xDS scale check: 10,000 ServiceEntries pushed to 100 Delta ADS clients (first full
# push p50/p99, incremental push after one ServiceEntry changes p50/p99, RSS now and at peak,
# and the process's CPU seconds for the first push and per incremental push). Targets: full
# push to 100 clients <= 5 s, incremental p99 <= 100 ms, RSS <= 1 GiB. Server and clients share
# one process, so RSS and CPU are upper bounds for the server alone.
#
# BASE=<commit> first runs the same benchmark at that commit (exported with git archive into a
# temporary directory), so that the two are measured in one session: on a shared machine wall
# times are noise, compare the CPU figures and the ratios.
#   BENCHTIME=3x BASE=e5c7b4c bench/xds.sh
set -eu
cd "$(dirname "$0")/.."
export MESHENTRY_XDS_SES="${MESHENTRY_XDS_SES:-10000}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# run NAME DIR builds the benchmark in DIR and runs it, with the whole process's CPU seconds
# and peak RSS from /usr/bin/time when it is installed (Debian package time).
run() {
	(cd "$2" && go test -c -o "$tmp/$1.test" ./internal/xds/server/)
	echo "== $1"
	timer=""
	[ -x /usr/bin/time ] && timer="/usr/bin/time -f %Uuser_s:%Ssys_s:%Mmax_rss_kB"
	(cd "$2/internal/xds/server" && $timer "$tmp/$1.test" -test.run XXX -test.bench BenchmarkScale \
		-test.benchtime="${BENCHTIME:-10x}" -test.timeout 30m) 2>&1 | grep -E '^(Benchmark|PASS|FAIL|[0-9.]+user_s)'
}
if [ -n "${BASE:-}" ]; then
	mkdir "$tmp/base"
	git archive "$BASE" | tar -x -C "$tmp/base"
	run base "$tmp/base"
fi
run head .
