# shellcheck shell=bash
# Sourced by bench/proxy.sh and bench/churn.sh: the syscall table, and the rounds (run_rounds,
# rounds_median, rounds_ratios, rounds_note) that their tables are the medians of.

# syscall_table LABEL=FILE...: counts per request or connection of several processes side by
# side, each FILE holding "syscall calls failed" lines; "calls (failed)", a header row, then
# the most frequent first, then the total.
syscall_table() {
  local labels=() files=()
  for a in "$@"; do labels+=("${a%%=*}"); files+=("${a#*=}"); done
  printf "%-18s" syscall; for l in "${labels[@]}"; do printf " %22s" "$l"; done; printf "\n"
  awk -v labels="${labels[*]}" '
    FNR == 1 { f++ }
    { seen[$1] = 1; c[f, $1] = $2; e[f, $1] = $3; tot[f] += $2; etot[f] += $3; key[$1] += $2 }
    END {
      n = split(labels, l, " ")
      for (s in seen) {
        if (key[s] < 0.005 * n) continue   # a few calls in the whole run
        line = sprintf("%-18s", s)
        for (i = 1; i <= n; i++) line = line sprintf(" %22s", sprintf("%.2f (%.2f)", c[i, s], e[i, s]))
        printf "%09.2f\t%s\n", key[s], line
      }
      printf "%09.2f\t%-18s", -1, "total"
      for (i = 1; i <= n; i++) printf " %22s", sprintf("%.2f (%.2f)", tot[i], etot[i]); printf "\n"
    }' "${files[@]}" | sort -t$'\t' -k1,1gr | cut -f2-
}

# run_rounds FILE FN KEY...: $ROUNDS rounds of `FN KEY` for every KEY, the order rotated by one
# each round (round 1: A B C, round 2: B C A, round 3: C A B), so that no row is always first or
# last while the machine's speed drifts; ROUND holds the round's number during FN, for the names
# of its raw files. FN prints its figures; FILE gets "KEY ROUND figures..." per run. A failed run
# is reported and left out, so the median of that row is over the other rounds.
run_rounds() {
  local file=$1 fn=$2 keys n r i k out t0
  shift 2
  keys=("$@") n=$#
  : >"$file"
  : >"$file.steal"
  for ((r = 1; r <= ${ROUNDS:?}; r++)); do
    # shellcheck disable=SC2034 # read by FN
    ROUND=$r
    t0=$(cpu_times)
    for ((i = 0; i < n; i++)); do
      k=${keys[(i + r - 1) % n]}
      if out=$("$fn" "$k") && [ -n "$out" ]; then
        echo "$k $r $out" >>"$file"
      else
        echo "round $r, $k: the run failed; left out of the median" >&2
      fi
    done
    steal_pct "$t0" "$(cpu_times)" >>"$file.steal"
  done
}

# cpu_times: the machine's CPU time so far, all states, and the part stolen by the hypervisor
# (/proc/stat, in clock ticks): "total steal".
cpu_times() { awk '$1 == "cpu" { t = 0; for (i = 2; i <= 9; i++) t += $i; print t, $9 }' /proc/stat; }

# steal_pct "T0 S0" "T1 S1": the share of the machine's CPU time the hypervisor took between two
# cpu_times, in percent. On a shared host it slows every row of a round at once, and unevenly.
steal_pct() { awk -v a="$1" -v b="$2" 'BEGIN { split(a, x); split(b, y); t = y[1] - x[1]; printf "%.0f\n", (t > 0 ? 100 * (y[2] - x[2]) / t : 0) }'; }

# rounds_steal FILE: the CPU steal of each round of a run_rounds FILE, "3% 17% 25%".
rounds_steal() { awk '{ printf "%s%s%%", (NR > 1) ? " " : "", $1 } END { print "" }' "$1.steal"; }

# rounds_median FILE: "KEY M1 M2..." for each KEY of a run_rounds FILE, in the order first seen,
# each M the median of that column over the rounds, column by column ("-" where no round has a
# figure). For an even count it is the mean of the two middle values. Each M keeps the most
# decimals its column's figures have.
rounds_median() {
  awk '
    function decimals(s) { return index(s, ".") ? length(s) - index(s, ".") : 0 }
    !($1 in seen) { seen[$1] = 1; keys[++nk] = $1 }
    {
      if (NF - 2 > nc) nc = NF - 2
      for (i = 3; i <= NF; i++) {
        if ($i == "-") continue
        j = ++n[$1, i]; v[$1, i, j] = $i + 0
        if (decimals($i) > d[$1, i] + 0) d[$1, i] = decimals($i)
      }
    }
    END {
      for (k = 1; k <= nk; k++) {
        key = keys[k]; line = key
        for (i = 3; i <= nc + 2; i++) {
          m = n[key, i] + 0
          if (m == 0) { line = line " -"; continue }
          for (a = 2; a <= m; a++) { # insertion sort: a handful of rounds
            x = v[key, i, a]
            for (b = a - 1; b >= 1 && v[key, i, b] > x; b--) v[key, i, b + 1] = v[key, i, b]
            v[key, i, b + 1] = x
          }
          med = (m % 2) ? v[key, i, (m + 1) / 2] : (v[key, i, m / 2] + v[key, i, m / 2 + 1]) / 2
          line = line " " sprintf("%." (d[key, i] + 0) "f", med)
        }
        print line
      }
    }' "$1"
}

# rounds_ratios FILE KEY REF COL: KEY's figure in column COL (1 the first) over REF's of the same
# round, one per round in round order ("-" for a round that lacks either).
rounds_ratios() {
  awk -v key="$2" -v ref="$3" -v col="$4" '
    $1 == key { a[$2] = $(col + 2) } $1 == ref { b[$2] = $(col + 2) } $2 + 0 > n { n = $2 + 0 }
    END {
      for (r = 1; r <= n; r++) {
        ok = (r in a) && (r in b) && a[r] != "-" && b[r] != "-" && b[r] + 0 > 0
        printf "%s%s", (r > 1) ? " " : "", ok ? sprintf("%.2f", a[r] / b[r]) : "-"
      }
      print ""
    }' "$1"
}

# rounds_note: how a table's figures were reduced, for its header line.
rounds_note() {
  if [ "${ROUNDS:?}" = 1 ]; then echo "1 round"
  elif [ $((ROUNDS % 2)) = 0 ]; then echo "median of $ROUNDS rounds (the mean of the middle two)"
  else echo "median of $ROUNDS rounds"; fi
}
