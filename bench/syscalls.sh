# Sourced by bench/proxy.sh and bench/churn.sh.
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
