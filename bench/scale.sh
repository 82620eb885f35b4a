#!/usr/bin/env bash
# Measures the control plane at scale: for N ServiceEntries (two hosts each, a mix of exact,
# wildcard, VIP, CIDR, DNS and STATIC entries over several namespaces, spread over FILES files),
# `meshentry validate` wall time and peak RSS, `meshentry run` time to /ready and its peak RSS,
# and the time from rewriting one file to the new entry it adds serving traffic.
#
#   bench/scale.sh                       # N = 10,000 and 100,000 over 1,000 files
#   SIZES="100000" FILES=1 bench/scale.sh    # one big file, as issue 10's first figures
#   BASE_REV=47cdcb5 bench/scale.sh      # also measures meshentry built from that commit, same run
#
# RELOAD_DEBOUNCE sets --reload-debounce for run (empty: meshentry's default).
# PROFILE=1 writes a CPU profile of each build's reloads to $OUT/reload-BUILD-N.pprof
# (`go tool pprof -top $OUT/meshentry $OUT/reload-meshentry-100000.pprof`).
# SETTLE (seconds, 2.5 by default) is how long the generated files age before the runs; SETTLE=0
# measures reloads while every file is still too recent for its stat to prove it unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES:-"10000 100000"}
FILES=${FILES:-1000}
RELOADS=${RELOADS:-5}
OUT=${OUT:-bench/out}
# Other benchmarks may hold the default ports: ADMIN and PROXY move them.
ADMIN=${ADMIN:-127.0.0.1:18100}
PROXY=${PROXY:-127.0.0.1:18101}
# shellcheck source=bench/scalebuild.sh
. bench/scalebuild.sh

debounce=()
[ -n "${RELOAD_DEBOUNCE:-}" ] && debounce=(--reload-debounce "$RELOAD_DEBOUNCE")

# The machine may be shared: the load is printed with each size, and CPU seconds beside wall time.
echo "# $(date -u +%FT%TZ) $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
for n in $SIZES; do
  dir="$out_abs/entries-$n"
  "$OUT/scaletool" gen -n "$n" -files "$FILES" -dir "$dir"
  # The reload figure is one file changed among files that were not. The config cache takes a
  # file as unchanged on its stat alone only once the file's times are older than its
  # racy-clean margin (2 s, internal/config/cache.go); until then it reads and hashes it again.
  # So the files just generated age past that first, as the files of a running config have.
  sleep "${SETTLE:-2.5}"
  echo "## N=$n in $FILES files ($(du -sh "$dir" | cut -f1)), load: $(cut -d' ' -f1-3 /proc/loadavg)"
  # The file the reload rewrites: one in the middle of the load order.
  mid=$(find "$dir" -name '*.yaml' | sort | sed -n "$(( (FILES + 1) / 2 ))p")
  for b in "${builds[@]}"; do
    /usr/bin/time -f "%e %U %S %M" -o "$OUT/time.txt" "$OUT/$b" validate -f "$dir" >"$OUT/validate.txt" || true
    read -r wall user sys kb <"$OUT/time.txt"
    echo "$b validate: $wall s wall, $(awk "BEGIN{print $user + $sys}") s CPU, peak RSS $((kb / 1024)) MB; $(tail -1 "$OUT/validate.txt")"
    prof=()
    [ -n "${PROFILE:-}" ] && prof=(-cpuprofile "$out_abs/reload-$b-$n.pprof")
    pprof_flag=()
    [ -n "${PROFILE:-}" ] && pprof_flag=(--admin-pprof)
    "$OUT/scaletool" serve -admin "$ADMIN" -proxy "$PROXY" -file "$mid" -reloads "$RELOADS" "${prof[@]}" -- \
      "$OUT/$b" run -f "$dir" --listen "$PROXY" --admin "$ADMIN" --log-level warn "${debounce[@]}" "${pprof_flag[@]}" \
      2> >(grep -v -e draining -e drained >&2) | sed "s/^/$b /"
  done
done
