#!/usr/bin/env bash
# Profiles `meshentry run` from its start until /ready answers (the time bench/scale.sh reports
# as "run ready"), over N generated ServiceEntries in FILES files, and prints the profile's top.
#
#   bench/startprof.sh                  # N=100000 in 1000 files, profile in bench/out/run.prof
#   N=10000 TOP=40 bench/startprof.sh
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-100000}
FILES=${FILES:-1000}
TOP=${TOP:-50}
OUT=${OUT:-bench/out}
ADMIN=${ADMIN:-127.0.0.1:18110}
PROXY=${PROXY:-127.0.0.1:18111}
mkdir -p "$OUT"
out_abs=$(cd "$OUT" && pwd)

go build -tags startprof -o "$OUT/meshentry-prof" ./cmd/meshentry
go build -o "$OUT/scaletool" ./bench/scaletool
dir="$out_abs/entries-$N"
[ -d "$dir" ] || "$OUT/scaletool" gen -n "$N" -files "$FILES" -dir "$dir"
prof="$out_abs/run.prof"
rm -f "$prof"
echo "# $(date -u +%FT%TZ) $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
MESHENTRY_CPUPROFILE="$prof" MESHENTRY_READY_URL="http://$ADMIN/ready" \
  "$OUT/meshentry-prof" run -f "$dir" --listen "$PROXY" --admin "$ADMIN" --log-level warn >/dev/null &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
# The profile is written once /ready answered; a non-empty file that stopped growing is whole.
for _ in $(seq 1200); do
  if [ -s "$prof" ]; then
    sleep 0.5
    break
  fi
  sleep 0.1
done
kill "$pid"
wait "$pid" 2>/dev/null || true
go tool pprof -top -nodecount="$TOP" "$OUT/meshentry-prof" "$prof" 2>/dev/null
