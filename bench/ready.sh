#!/usr/bin/env bash
# Times `meshentry run` to /ready over N generated ServiceEntries in FILES files, RUNS times,
# alternating this tree's build with BASE_REV's so both see the same machine, and prints each
# run and the median of wall time and CPU seconds (on a shared machine, compare the CPU).
#
#   BASE_REV=21acf03 bench/ready.sh          # N=100000 in 1000 files, 5 runs of each
#   N=10000 RUNS=9 BASE_REV=21acf03 bench/ready.sh
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-100000}
FILES=${FILES:-1000}
RUNS=${RUNS:-5}
OUT=${OUT:-bench/out}
ADMIN=${ADMIN:-127.0.0.1:18120}
PROXY=${PROXY:-127.0.0.1:18121}
# shellcheck source=bench/scalebuild.sh
. bench/scalebuild.sh
dir="$out_abs/entries-$N"
[ -d "$dir" ] || "$OUT/scaletool" gen -n "$N" -files "$FILES" -dir "$dir"

echo "# $(date -u +%FT%TZ) $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg); N=$N in $FILES files"
for _ in $(seq "$RUNS"); do
  for b in "${builds[@]}"; do
    "$OUT/scaletool" serve -admin "$ADMIN" -proxy "$PROXY" -- \
      "$OUT/$b" run -f "$dir" --listen "$PROXY" --admin "$ADMIN" --log-level warn 2>/dev/null | sed "s/^/$b /"
  done
done | tee "$OUT/ready.txt"
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
for b in "${builds[@]}"; do
  # "NAME run ready: 2.345 s, 3.21 s CPU, ...": fields 4 and 6.
  wall=$(awk -v b="$b" '$1 == b { print $4 }' "$OUT/ready.txt" | median)
  cpu=$(awk -v b="$b" '$1 == b { print $6 }' "$OUT/ready.txt" | median)
  min=$(awk -v b="$b" '$1 == b { print $4 }' "$OUT/ready.txt" | sort -n | head -1)
  echo "$b over $RUNS runs: ready median $wall s wall (min $min s), median $cpu s CPU"
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
