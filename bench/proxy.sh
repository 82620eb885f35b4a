#!/usr/bin/env bash
# Measures meshentry's forward proxy against a direct connection, HAProxy and a Go HTTP proxy on
# raw epoll (evhttp, below), in one run, on 127.0.0.1: (a) HTTP/1.1 keep-alive requests/s, p50/p99
# latency, proxy CPU per request and the backend's CPU per request (the one Go backend every row
# shares) with one wrk thread, at each connection count of CONNS (16 and 256); (b) the throughput of a 1 GiB stream through a TCP/TLS passthrough (CONNECT tunnel for
# meshentry, mode tcp for HAProxy). Installs wrk and haproxy from the distribution when missing.
#
#   bench/proxy.sh            # 10 s per HTTP run, 1 GiB streams
#   DURATION=5s CONNS="16 256" BYTES=1073741824 bench/proxy.sh
#   ROUNDS=5 bench/proxy.sh           # (a) in 5 rounds (3 by default) of every row, the order rotated
#                                     # by one each round: medians (even ROUNDS: the mean of the middle
#                                     # two), ratios of medians, each round's ratios below the table
#   SYSCALLS=1 bench/proxy.sh         # also strace -c -f each proxy during a wrk run: syscalls
#                                     # (and failed ones, EAGAIN mostly) per request, side by side
#   STREAMS=0 bench/proxy.sh          # the HTTP rows only
#   PROFILE=1 bench/proxy.sh          # also a CPU profile of meshentry (and the BASE_REV build,
#                                     # and both evhttp) under wrk at each CONNS; the top to
#                                     # $OUT/profile-*.txt
#   BASE_REV=fb047fb bench/proxy.sh   # also runs meshentry built from that commit, in the same run,
#                                     # with the main row's flags (BASE_FLAGS= for a build without them)
#   VS=1 bench/proxy.sh               # also the main row's meshentry (and the BASE_REV build) with
#                                     # a VirtualService in its config that binds another host
#                                     # (rows "..., a VS for another host"), and one whose
#                                     # VirtualService routes bench.local itself (row "meshentry, a VS
#                                     # routing this host": its requests go to the goroutine engine)
#   HTTP_ROWS="meshentry" ROUNDS=7 bench/proxy.sh
#                                     # only these keep-alive rows (keys: meshentry haproxy-hdrs
#                                     # meshentry-loop meshentry-obs evhttp evhttp-unlocked) beside
#                                     # direct and haproxy, which always run: more rounds in the
#                                     # same time, for medians the noise of this machine moves less
#   THREADS=1 bench/proxy.sh          # every proxy on one thread: HAProxy nbthread, meshentry
#                                     # --concurrency (GOMAXPROCS, so a BASE_REV build follows too),
#                                     # evhttp GOMAXPROCS (its loops)
#
# The main meshentry row runs with the access log off and no Istio metrics; a second instance with
# both on (the access log to a file, the metrics recorded and scraped once at the end) runs in the
# same run, so their cost is read off two adjacent rows. Both serve their HTTP requests on the
# loop engine on internal/evloop's threads (--forward-event-loop, on by default). The row
# "meshentry, goroutine engine" is a third instance, flagged as the main one with
# --forward-event-loop=false: every request served by the goroutine engine on Go's net.
#
# The row "Go HTTP on raw epoll (evhttp)" is `benchtool evhttp`, a minimal HTTP/1.1 keep-alive
# proxy written in Go on raw epoll (a loop per GOMAXPROCS, edge-triggered, idle upstream
# connections kept registered in epoll instead of a MSG_PEEK before reuse), doing roughly the
# per-request work of meshentry's engine without its routing, timeouts, chunked bodies or
# telemetry: the ceiling an engine on our own event loop could reach here. It is measured like
# the others (same wrk, Host field and CPU from its /proc/PID/stat, THREADS as GOMAXPROCS) and
# has a column in the SYSCALLS table. Its loops are goroutines locked to their threads; the row
# "evhttp, loops not locked" is the same proxy with EVHTTP_LOCK=0, its loops parking on the
# netpoller as plain goroutines, as internal/evloop's have since they stopped locking theirs:
# that row is meshentry's like-for-like, and the two rows part the cost of a locked goroutine's
# park and wake-up from the rest.
#
# meshentry adds two fields to each request it forwards: Via (its loop guard) and x-request-id
# (Envoy's generate_request_id), 89 bytes the backend reads and parses; HAProxy as configured
# adds none. The row "haproxy, adding Via + x-request-id" is a second HAProxy frontend that sets
# the same two fields (a UUID per request), so that the backend's share of a run is read off
# with the proxies doing the same job. The Must-show ratios stay against plain "haproxy".
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNS=${CONNS:-16 256}
SYSCALLS=${SYSCALLS:-0}
STRACE_DURATION=${STRACE_DURATION:-5s}
STREAMS=${STREAMS:-1}
PROFILE=${PROFILE:-0}
PROFILE_SECONDS=${PROFILE_SECONDS:-5}
BYTES=${BYTES:-1073741824}
REPEAT=${REPEAT:-3}
ROUNDS=${ROUNDS:-3}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS=$ROUNDS: want a count of rounds, 1 or more" >&2; exit 2; }
OUT=${OUT:-bench/out}
# direct and haproxy always run, first: the ratios and the per-round lines are taken against them.
http_rows=(meshentry haproxy-hdrs meshentry-loop meshentry-obs evhttp evhttp-unlocked)
if [ -n "${HTTP_ROWS:-}" ]; then
  for k in $HTTP_ROWS; do
    case " ${http_rows[*]} " in *" $k "*) ;; *) echo "HTTP_ROWS: no row $k (rows: ${http_rows[*]})" >&2; exit 2 ;; esac
  done
  read -r -a http_rows <<<"$HTTP_ROWS"
fi
mkdir -p "$OUT"

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v haproxy >/dev/null || need+=(haproxy)
if [ "$SYSCALLS" = 1 ]; then command -v strace >/dev/null || need+=(strace); fi
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

go build -o "$OUT/meshentry" ./cmd/meshentry
go build -o "$OUT/benchtool" ./bench/benchtool
if [ -n "${BASE_REV:-}" ]; then
  # The same benchmark for an earlier build, side by side, so a change is judged in one run.
  base_src=$(mktemp -d)
  git archive "$BASE_REV" | tar -x -C "$base_src"
  out_abs=$(cd "$OUT" && pwd)
  (cd "$base_src" && go build -o "$out_abs/meshentry-base" ./cmd/meshentry)
  rm -rf "$base_src"
fi

# PORT_BASE moves every port, so that two runs on one machine do not collide.
P=${PORT_BASE:-18000}
BACKEND=127.0.0.1:$((P + 80))   # HTTP backend
SOURCE=127.0.0.1:$((P + 90))    # TCP source of $BYTES per connection
HAPROXY_HTTP=127.0.0.1:$((P + 81))
HAPROXY_TCP=127.0.0.1:$((P + 91))
HAPROXY_HDRS=127.0.0.1:$((P + 86)) # HAProxy adding meshentry's two request fields
GOPIPE=127.0.0.1:$((P + 92))     # plain Go io.Copy relay, the floor for any Go passthrough
EVHTTP=127.0.0.1:$((P + 82))     # benchtool evhttp: Go HTTP/1.1 proxy on raw epoll, the ceiling
EVHTTP_UNL=127.0.0.1:$((P + 83)) # the same, its loops not locked to threads
EVHTTP_PPROF=127.0.0.1:$((P + 84))     # their profiles, with PROFILE=1
EVHTTP_UNL_PPROF=127.0.0.1:$((P + 85))
MESH=127.0.0.1:$((P + 1))
MESH_ADMIN=127.0.0.1:$((P + 0))
MESH_BASE=127.0.0.1:$((P + 3))
MESH_BASE_ADMIN=127.0.0.1:$((P + 2))
MESH_OBS=127.0.0.1:$((P + 5))
MESH_OBS_ADMIN=127.0.0.1:$((P + 4))
MESH_LOOP=127.0.0.1:$((P + 7))
MESH_LOOP_ADMIN=127.0.0.1:$((P + 6))
MESH_VS=127.0.0.1:$((P + 9))            # VS=1: the config with a VirtualService for another host
MESH_VS_ADMIN=127.0.0.1:$((P + 8))
MESH_BASE_VS=127.0.0.1:$((P + 11))
MESH_BASE_VS_ADMIN=127.0.0.1:$((P + 10))
MESH_VS_OWN=127.0.0.1:$((P + 13))       # VS=1: the config with a VirtualService for bench.local
MESH_VS_OWN_ADMIN=127.0.0.1:$((P + 12))

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$OUT/benchtool" http "$BACKEND" & pids+=($!)
BACKEND_PID=$!
"$OUT/benchtool" source "$SOURCE" "$BYTES" & pids+=($!)
"$OUT/benchtool" pipe "$GOPIPE" "$SOURCE" & pids+=($!)

cat > "$OUT/haproxy.cfg" <<CFG
global
  maxconn 4096
${THREADS:+  nbthread $THREADS}
defaults
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend http_in
  mode http
  bind $HAPROXY_HTTP
  option http-keep-alive
  default_backend http_out
frontend http_hdrs
  mode http
  bind $HAPROXY_HDRS
  option http-keep-alive
  http-request set-header Via "1.1 haproxy-0123456789abcdef"
  http-request set-header x-request-id %[uuid]
  default_backend http_out
backend http_out
  mode http
  http-reuse always
  server b1 $BACKEND
frontend tcp_in
  mode tcp
  bind $HAPROXY_TCP
  default_backend tcp_out
backend tcp_out
  mode tcp
  server s1 $SOURCE
CFG
haproxy -f "$OUT/haproxy.cfg" -db >"$OUT/haproxy.log" 2>&1 & pids+=($!)
HAPROXY_PID=$!

cat > "$OUT/bench.yaml" <<CFG
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: bench-http}
spec:
  hosts: [bench.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: ${BACKEND##*:}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: bench-stream}
spec:
  hosts: [stream.local]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tls: ${SOURCE##*:}}}]
CFG
# The profiles are served only when asked for: sampling costs CPU.
pprof=()
if [ "$PROFILE" = 1 ]; then pprof=(--admin-pprof); fi
${THREADS:+env GOMAXPROCS=$THREADS} "$OUT/meshentry" run -f "$OUT/bench.yaml" --listen "$MESH" --admin "$MESH_ADMIN" --log-level warn \
  "${pprof[@]}" --access-log off --istio-metrics=false >"$OUT/meshentry.log" 2>&1 & pids+=($!)
MESH_PID=$!
${THREADS:+env GOMAXPROCS=$THREADS} "$OUT/meshentry" run -f "$OUT/bench.yaml" --listen "$MESH_LOOP" --admin "$MESH_LOOP_ADMIN" --log-level warn \
  "${pprof[@]}" --access-log off --istio-metrics=false --forward-event-loop=false >"$OUT/meshentry-loop.log" 2>&1 & pids+=($!)
MESH_LOOP_PID=$!
rm -f "$OUT/access.log"
${THREADS:+env GOMAXPROCS=$THREADS} "$OUT/meshentry" run -f "$OUT/bench.yaml" --listen "$MESH_OBS" --admin "$MESH_OBS_ADMIN" --log-level warn \
  --access-log "$OUT/access.log" --istio-metrics=true >"$OUT/meshentry-obs.log" 2>&1 & pids+=($!)
MESH_OBS_PID=$!
evpprof=() evpprof_unl=()
if [ "$PROFILE" = 1 ]; then evpprof=(EVHTTP_PPROF="$EVHTTP_PPROF") evpprof_unl=(EVHTTP_PPROF="$EVHTTP_UNL_PPROF"); fi
${THREADS:+env GOMAXPROCS=$THREADS} env "${evpprof[@]}" "$OUT/benchtool" evhttp "$EVHTTP" "$BACKEND" >"$OUT/evhttp.log" 2>&1 & pids+=($!)
EVHTTP_PID=$!
${THREADS:+env GOMAXPROCS=$THREADS} env "${evpprof_unl[@]}" EVHTTP_LOCK=0 "$OUT/benchtool" evhttp "$EVHTTP_UNL" "$BACKEND" >"$OUT/evhttp-unlocked.log" 2>&1 & pids+=($!)
EVHTTP_UNL_PID=$!
MESH_BASE_PID=
if [ -n "${BASE_REV:-}" ]; then
  ${THREADS:+env GOMAXPROCS=$THREADS} "$OUT/meshentry-base" run -f "$OUT/bench.yaml" --listen "$MESH_BASE" --admin "$MESH_BASE_ADMIN" --log-level warn \
    "${pprof[@]}" ${BASE_FLAGS---access-log off --istio-metrics=false} >"$OUT/meshentry-base.log" 2>&1 & pids+=($!)
  MESH_BASE_PID=$!
fi
# VS=1: the same config and a VirtualService that binds only other.local, which no request
# here asks for: bench.local routes as before.
MESH_VS_PID= MESH_BASE_VS_PID= MESH_VS_OWN_PID=
if [ "${VS:-}" = 1 ]; then
  # A VirtualService binding bench.local, with one route and no other setting: Istio's default
  # retry policy comes with it, as with every VirtualService route.
  { cat "$OUT/bench.yaml"; printf '%s\n' --- 'apiVersion: networking.istio.io/v1' 'kind: VirtualService' \
    'metadata: {name: bench}' 'spec:' '  hosts: [bench.local]' '  http: [{route: [{destination: {host: bench.local}}]}]'; } >"$OUT/bench-vs-own.yaml"
  ${THREADS:+env GOMAXPROCS=$THREADS} "$OUT/meshentry" run -f "$OUT/bench-vs-own.yaml" --listen "$MESH_VS_OWN" --admin "$MESH_VS_OWN_ADMIN" \
    --log-level warn --access-log off --istio-metrics=false >"$OUT/meshentry-vs-own.log" 2>&1 & pids+=($!)
  MESH_VS_OWN_PID=$!
  { cat "$OUT/bench.yaml"; printf '%s\n' --- 'apiVersion: networking.istio.io/v1' 'kind: VirtualService' \
    'metadata: {name: other}' 'spec:' '  hosts: [other.local]' '  http: [{route: [{destination: {host: bench.local}}]}]'; } >"$OUT/bench-vs.yaml"
  ${THREADS:+env GOMAXPROCS=$THREADS} "$OUT/meshentry" run -f "$OUT/bench-vs.yaml" --listen "$MESH_VS" --admin "$MESH_VS_ADMIN" --log-level warn \
    --access-log off --istio-metrics=false >"$OUT/meshentry-vs.log" 2>&1 & pids+=($!)
  MESH_VS_PID=$!
  if [ -n "$MESH_BASE_PID" ]; then
    ${THREADS:+env GOMAXPROCS=$THREADS} "$OUT/meshentry-base" run -f "$OUT/bench-vs.yaml" --listen "$MESH_BASE_VS" --admin "$MESH_BASE_VS_ADMIN" \
      --log-level warn ${BASE_FLAGS---access-log off --istio-metrics=false} >"$OUT/meshentry-base-vs.log" 2>&1 & pids+=($!)
    MESH_BASE_VS_PID=$!
  fi
fi

ready=
for _ in $(seq 100); do
  if curl -fsS -o /dev/null "http://$MESH_ADMIN/ready" 2>/dev/null && curl -fsS -o /dev/null "http://$MESH_OBS_ADMIN/ready" 2>/dev/null &&
    curl -fsS -o /dev/null "http://$MESH_LOOP_ADMIN/ready" 2>/dev/null && curl -fsS -o /dev/null "http://$HAPROXY_HTTP/" 2>/dev/null &&
    curl -fsS -o /dev/null "http://$HAPROXY_HDRS/" 2>/dev/null &&
    curl -fsS -o /dev/null -H "Host: bench.local" "http://$EVHTTP/" 2>/dev/null &&
    curl -fsS -o /dev/null -H "Host: bench.local" "http://$EVHTTP_UNL/" 2>/dev/null &&
    { [ -z "$MESH_BASE_PID" ] || curl -fsS -o /dev/null "http://$MESH_BASE_ADMIN/ready" 2>/dev/null; } &&
    { [ -z "$MESH_VS_PID" ] || curl -fsS -o /dev/null "http://$MESH_VS_ADMIN/ready" 2>/dev/null; } &&
    { [ -z "$MESH_VS_OWN_PID" ] || curl -fsS -o /dev/null "http://$MESH_VS_OWN_ADMIN/ready" 2>/dev/null; } &&
    { [ -z "$MESH_BASE_VS_PID" ] || curl -fsS -o /dev/null "http://$MESH_BASE_VS_ADMIN/ready" 2>/dev/null; }; then
    ready=1; break
  fi
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "meshentry, HAProxy or evhttp did not come up; see $OUT/meshentry.log, $OUT/haproxy.log and $OUT/evhttp.log" >&2
  exit 1
fi

# cpu_ticks PID: user+system clock ticks the process has used.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)

# run_wrk NAME URL PID [HOST]: prints "rps p50_us p99_us cpu_us_per_req backend_cpu_us_per_req"
# (cpu "-" without a PID) for $C connections; wrk's output to $OUT/wrk-NAME-cC-rROUND.txt.
run_wrk() {
  local name=$1-c$C-r$ROUND url=$2 pid=$3 host=${4:-} hdr=()
  [ -n "$host" ] && hdr=(-H "Host: $host")
  wrk -t1 -c"$C" -d1s "${hdr[@]}" "$url" >/dev/null   # warm up pools
  local c0=0 b0 b1; [ "$pid" != - ] && c0=$(cpu_ticks "$pid")
  b0=$(cpu_ticks "$BACKEND_PID")
  wrk -t1 -c"$C" -d"$DURATION" --latency "${hdr[@]}" "$url" >"$OUT/wrk-$name.txt" || return 1
  local c1=0; [ "$pid" != - ] && c1=$(cpu_ticks "$pid")
  b1=$(cpu_ticks "$BACKEND_PID")
  awk -v c0="$c0" -v c1="$c1" -v b0="$b0" -v b1="$b1" -v tck="$TCK" -v pid="$pid" '
    function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return (v+0)*1000; if (v ~ /s$/) return (v+0)*1e6; return v }
    /^ +50%/ { p50 = us($2) } /^ +99%/ { p99 = us($2) }
    /requests in/ { reqs = $1 }
    /^Requests\/sec/ { rps = $2 }
    /Non-2xx/ { bad = $NF }
    /Socket errors/ { sockerr = $0 }
    END {
      if (bad > 0) { print "wrk saw non-2xx responses" > "/dev/stderr"; exit 1 }
      if (sockerr != "") { print "wrk: " sockerr > "/dev/stderr"; exit 1 }
      cpu = (pid == "-") ? "-" : sprintf("%.1f", (c1 - c0) / tck * 1e6 / reqs)
      printf "%.0f %.0f %.0f %s %.1f\n", rps, p50, p99, cpu, (b1 - b0) / tck * 1e6 / reqs
    }' "$OUT/wrk-$name.txt"
}

# median_stream CMD...: the median MiB/s of $REPEAT runs of a fetch command (the direct baseline
# swings between runs with where the scheduler puts the two processes, so a best-of would flatter it).
median_stream() {
  local runs=()
  for _ in $(seq "$REPEAT"); do
    runs+=("$("$@" | awk '{print $2}')")
  done
  printf '%s\n' "${runs[@]}" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# strace_wrk NAME URL PID [HOST]: runs wrk for $STRACE_DURATION at $C connections with strace -c
# -f attached to every thread of PID, and writes "syscall calls/req failed/req" lines (failed is
# mostly EAGAIN) to $OUT/syscalls-NAME-cC.txt. strace slows the proxy down several times; the
# counts per request are what it is for, not the rate.
strace_wrk() {
  local name=$1 url=$2 pid=$3 host=${4:-} hdr=()
  [ -n "$host" ] && hdr=(-H "Host: $host")
  local raw="$OUT/strace-$name-c$C.txt" log="$OUT/wrk-strace-$name-c$C.txt"
  wrk -t1 -c"$C" -d1s "${hdr[@]}" "$url" >/dev/null   # warm up pools
  strace -c -f -q -p "$pid" -o "$raw" &
  local sp=$!
  sleep 1   # attached to every thread before the first request
  wrk -t1 -c"$C" -d"$STRACE_DURATION" "${hdr[@]}" "$url" >"$log"
  kill -INT "$sp"
  wait "$sp" || true
  awk -v reqs="$(awk '/requests in/ { print $1 }' "$log")" '
    $1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" {
      errs = (NF == 6) ? $5 : 0
      printf "%s %.2f %.2f\n", $NF, $4 / reqs, errs / reqs
    }' "$raw" >"$OUT/syscalls-$name-c$C.txt"
}

# shellcheck source=bench/syscalls.sh
. bench/syscalls.sh

# profile_wrk NAME URL ADMIN [HOST]: a CPU profile of PROFILE_SECONDS of the proxy serving pprof at
# ADMIN under wrk at $C connections; its top to $OUT/profile-NAME-cC.txt.
profile_wrk() {
  local name=$1 url=$2 admin=$3 host=${4:-} hdr=()
  [ -n "$host" ] && hdr=(-H "Host: $host")
  local prof="$OUT/cpu-$name-c$C.prof"
  wrk -t1 -c"$C" -d"$((PROFILE_SECONDS + 2))s" "${hdr[@]}" "$url" >/dev/null &
  local wp=$!
  sleep 1
  curl -fsS -o "$prof" "http://$admin/debug/pprof/profile?seconds=$PROFILE_SECONDS"
  wait "$wp"
  go tool pprof -top -nodecount=30 "$prof" >"$OUT/profile-$name-c$C.txt" 2>/dev/null
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "-" && b != "-" && b > 0) printf "%.2f", a / b; else print "-" }'; }
row() { printf "%-34s %6s %10s %10s %10s %12s %10s %10s %10s\n" "$@"; }

# http_row KEY: the measured run (after its warm-up) of row KEY of (a) at $C connections.
http_row() {
  case $1 in
    direct) run_wrk direct "http://$BACKEND/" - ;;
    haproxy) run_wrk haproxy "http://$HAPROXY_HTTP/" "$HAPROXY_PID" ;;
    haproxy-hdrs) run_wrk haproxy-hdrs "http://$HAPROXY_HDRS/" "$HAPROXY_PID" ;;
    meshentry) run_wrk meshentry "http://$MESH/" "$MESH_PID" bench.local ;;
    meshentry-loop) run_wrk meshentry-loop "http://$MESH_LOOP/" "$MESH_LOOP_PID" bench.local ;;
    meshentry-obs) run_wrk meshentry-obs "http://$MESH_OBS/" "$MESH_OBS_PID" bench.local ;;
    meshentry-base) run_wrk meshentry-base "http://$MESH_BASE/" "$MESH_BASE_PID" bench.local ;;
    meshentry-vs) run_wrk meshentry-vs "http://$MESH_VS/" "$MESH_VS_PID" bench.local ;;
    meshentry-base-vs) run_wrk meshentry-base-vs "http://$MESH_BASE_VS/" "$MESH_BASE_VS_PID" bench.local ;;
    meshentry-vs-own) run_wrk meshentry-vs-own "http://$MESH_VS_OWN/" "$MESH_VS_OWN_PID" bench.local ;;
    evhttp) run_wrk evhttp "http://$EVHTTP/" "$EVHTTP_PID" bench.local ;;
    evhttp-unlocked) run_wrk evhttp-unlocked "http://$EVHTTP_UNL/" "$EVHTTP_UNL_PID" bench.local ;;
  esac
}
declare -A label=([direct]="direct" [haproxy]="haproxy" [haproxy-hdrs]="haproxy, adding Via + x-request-id"
  [meshentry]="meshentry (forward proxy)"
  [meshentry-loop]="meshentry, goroutine engine"
  [meshentry-obs]="meshentry, access log + metrics" [meshentry-base]="meshentry at ${BASE_REV:-}"
  [meshentry-vs]="meshentry, a VS for another host" [meshentry-base-vs]="${BASE_REV:-}, a VS for another host"
  [meshentry-vs-own]="meshentry, a VS routing this host"
  [evhttp]="Go HTTP on raw epoll (evhttp)" [evhttp-unlocked]="evhttp, loops not locked")

{
  echo
  echo "HTTP/1.1 keep-alive, 128-byte responses, ${THREADS:+THREADS=$THREADS, }$(rounds_note), $DURATION per run"
  row "HTTP keep-alive (wrk -t1)" conns "req/s" "p50 µs" "p99 µs" "CPU µs/req" "backend µs" "×direct" "×haproxy"
} >"$OUT/result.txt"
keys=(direct haproxy "${http_rows[@]}")
[ -n "$MESH_BASE_PID" ] && keys+=(meshentry-base)
[ -n "$MESH_VS_PID" ] && keys+=(meshentry-vs)
[ -n "$MESH_BASE_VS_PID" ] && keys+=(meshentry-base-vs)
[ -n "$MESH_VS_OWN_PID" ] && keys+=(meshentry-vs-own)
summary=() per_round=()
for C in $CONNS; do
  echo "HTTP/1.1 keep-alive, wrk -t1 -c$C -d$DURATION, 128-byte responses, ROUNDS=$ROUNDS" >&2
  rounds="$OUT/rounds-http-c$C.txt"
  run_rounds "$rounds" http_row "${keys[@]}"
  declare -A rps=() p50=() p99=() cpu=() bcpu=()
  while read -r k a b c d e; do rps[$k]=$a p50[$k]=$b p99[$k]=$c cpu[$k]=$d bcpu[$k]=$e; done < <(rounds_median "$rounds")
  for k in "${keys[@]}"; do
    row "${label[$k]}" "$C" "${rps[$k]:--}" "${p50[$k]:--}" "${p99[$k]:--}" "${cpu[$k]:--}" "${bcpu[$k]:--}" \
      "$(ratio "${rps[$k]:--}" "${rps[direct]:--}")" "$(ratio "${rps[$k]:--}" "${rps[haproxy]:--}")"
  done >>"$OUT/result.txt"
  per_round+=("-c$C CPU steal per round (the hypervisor's share of the machine): $(rounds_steal "$rounds")")
  for k in "${keys[@]:2}"; do
    per_round+=("-c$C ${label[$k]} per round ×haproxy req/s: $(rounds_ratios "$rounds" "$k" haproxy 1); CPU×ha: $(rounds_ratios "$rounds" "$k" haproxy 4)")
  done
  m_rps=${rps[meshentry]:--} m_p99=${p99[meshentry]:--} m_cpu=${cpu[meshentry]:--}
  h_rps=${rps[haproxy]:--} h_p99=${p99[haproxy]:--} h_cpu=${cpu[haproxy]:--}
  o_rps=${rps[meshentry-obs]:--} o_cpu=${cpu[meshentry-obs]:--}
  l_rps=${rps[meshentry-loop]:--} l_p99=${p99[meshentry-loop]:--} l_cpu=${cpu[meshentry-loop]:--}
  e_rps=${rps[evhttp]:--} e_p99=${p99[evhttp]:--} e_cpu=${cpu[evhttp]:--}
  u_rps=${rps[evhttp-unlocked]:--} u_p99=${p99[evhttp-unlocked]:--} u_cpu=${cpu[evhttp-unlocked]:--}
  line="-c$C meshentry/haproxy: req/s $(ratio "$m_rps" "$h_rps"), p99 $(ratio "$m_p99" "$h_p99"), CPU per request $(ratio "$m_cpu" "$h_cpu")"
  line+="; meshentry/haproxy adding the same fields: req/s $(ratio "$m_rps" "${rps[haproxy-hdrs]:--}"), p99 $(ratio "$m_p99" "${p99[haproxy-hdrs]:--}"), CPU per request $(ratio "$m_cpu" "${cpu[haproxy-hdrs]:--}")"
  [ -n "$MESH_BASE_PID" ] && line+="; meshentry/base: req/s $(ratio "$m_rps" "${rps[meshentry-base]:--}"), CPU per request $(ratio "$m_cpu" "${cpu[meshentry-base]:--}")"
  [ -n "$MESH_VS_PID" ] && line+="; with a VirtualService for another host/without: req/s $(ratio "${rps[meshentry-vs]:--}" "$m_rps"), CPU per request $(ratio "${cpu[meshentry-vs]:--}" "$m_cpu")"
  [ -n "$MESH_BASE_VS_PID" ] && line+="; the same at the base: req/s $(ratio "${rps[meshentry-base-vs]:--}" "${rps[meshentry-base]:--}"), CPU per request $(ratio "${cpu[meshentry-base-vs]:--}" "${cpu[meshentry-base]:--}")"
  [ -n "$MESH_VS_OWN_PID" ] && line+="; a VirtualService routing this host/haproxy: req/s $(ratio "${rps[meshentry-vs-own]:--}" "$h_rps"), p99 $(ratio "${p99[meshentry-vs-own]:--}" "$h_p99"), CPU per request $(ratio "${cpu[meshentry-vs-own]:--}" "$h_cpu")"
  line+="; goroutine engine/haproxy: req/s $(ratio "$l_rps" "$h_rps"), p99 $(ratio "$l_p99" "$h_p99"), CPU per request $(ratio "$l_cpu" "$h_cpu")"
  line+="; access log + metrics on/off: req/s $(ratio "$o_rps" "$m_rps"), CPU per request $(ratio "$o_cpu" "$m_cpu")"
  line+="; evhttp/haproxy: req/s $(ratio "$e_rps" "$h_rps"), p99 $(ratio "$e_p99" "$h_p99"), CPU per request $(ratio "$e_cpu" "$h_cpu")"
  line+="; evhttp unlocked/haproxy: req/s $(ratio "$u_rps" "$h_rps"), p99 $(ratio "$u_p99" "$h_p99"), CPU per request $(ratio "$u_cpu" "$h_cpu")"
  line+="; meshentry/evhttp: req/s $(ratio "$m_rps" "$e_rps"), CPU per request $(ratio "$m_cpu" "$e_cpu")"
  summary+=("$line")
done
printf '%s\n' "${per_round[@]}" >>"$OUT/result.txt"

if [ "$STREAMS" = 1 ]; then
  echo "Streams of $BYTES bytes, median of $REPEAT" >&2
  d_tp=$(median_stream "$OUT/benchtool" fetch "$SOURCE" "$BYTES")
  h_tp=$(median_stream "$OUT/benchtool" fetch "$HAPROXY_TCP" "$BYTES")
  g_tp=$(median_stream "$OUT/benchtool" fetch "$GOPIPE" "$BYTES")
  m_tp=$(median_stream "$OUT/benchtool" fetch "$MESH" "$BYTES" --connect stream.local:443)
  if [ -n "$MESH_BASE_PID" ]; then
    b_tp=$(median_stream "$OUT/benchtool" fetch "$MESH_BASE" "$BYTES" --connect stream.local:443)
  fi
  {
    echo
    printf "%-34s %12s %10s %10s\n" "1 GiB stream (passthrough)" "MiB/s" "×direct" "×haproxy"
    printf "%-34s %12s %10s %10s\n" "direct" "$d_tp" "1.00" "$(ratio "$d_tp" "$h_tp")"
    printf "%-34s %12s %10s %10s\n" "haproxy (mode tcp)" "$h_tp" "$(ratio "$h_tp" "$d_tp")" "1.00"
    printf "%-34s %12s %10s %10s\n" "plain Go io.Copy relay" "$g_tp" "$(ratio "$g_tp" "$d_tp")" "$(ratio "$g_tp" "$h_tp")"
    printf "%-34s %12s %10s %10s\n" "meshentry (CONNECT tunnel)" "$m_tp" "$(ratio "$m_tp" "$d_tp")" "$(ratio "$m_tp" "$h_tp")"
    if [ -n "$MESH_BASE_PID" ]; then
      printf "%-34s %12s %10s %10s\n" "meshentry at $BASE_REV (CONNECT)" "$b_tp" "$(ratio "$b_tp" "$d_tp")" "$(ratio "$b_tp" "$h_tp")"
    fi
  } >>"$OUT/result.txt"
fi

if [ "$SYSCALLS" = 1 ]; then
  for C in $CONNS; do
    echo "Syscalls per request under strace -c -f, wrk -t1 -c$C -d$STRACE_DURATION" >&2
    strace_wrk haproxy "http://$HAPROXY_HTTP/" "$HAPROXY_PID"
    strace_wrk meshentry "http://$MESH/" "$MESH_PID" bench.local
    strace_wrk meshentry-loop "http://$MESH_LOOP/" "$MESH_LOOP_PID" bench.local
    strace_wrk evhttp "http://$EVHTTP/" "$EVHTTP_PID" bench.local
    strace_wrk evhttp-unlocked "http://$EVHTTP_UNL/" "$EVHTTP_UNL_PID" bench.local
    cols=("haproxy=$OUT/syscalls-haproxy-c$C.txt" "meshentry=$OUT/syscalls-meshentry-c$C.txt" "goroutine=$OUT/syscalls-meshentry-loop-c$C.txt" "evhttp=$OUT/syscalls-evhttp-c$C.txt"
      "evhttp-unlocked=$OUT/syscalls-evhttp-unlocked-c$C.txt")
    if [ -n "$MESH_BASE_PID" ]; then
      strace_wrk meshentry-base "http://$MESH_BASE/" "$MESH_BASE_PID" bench.local
      cols+=("base=$OUT/syscalls-meshentry-base-c$C.txt")
    fi
    {
      echo
      echo "Syscalls per request, -c$C (calls (failed)), strace -c -f"
      syscall_table "${cols[@]}"
    } >>"$OUT/result.txt"
  done
fi

if [ "$PROFILE" = 1 ]; then
  for C in $CONNS; do
    echo "CPU profiles, wrk -t1 -c$C" >&2
    profile_wrk meshentry "http://$MESH/" "$MESH_ADMIN" bench.local
    profile_wrk meshentry-loop "http://$MESH_LOOP/" "$MESH_LOOP_ADMIN" bench.local
    profile_wrk evhttp "http://$EVHTTP/" "$EVHTTP_PPROF" bench.local
    profile_wrk evhttp-unlocked "http://$EVHTTP_UNL/" "$EVHTTP_UNL_PPROF" bench.local
    if [ -n "$MESH_BASE_PID" ]; then
      profile_wrk meshentry-base "http://$MESH_BASE/" "$MESH_BASE_ADMIN" bench.local
    fi
  done
  echo "CPU profiles: $(ls "$OUT"/profile-*.txt | tr '\n' ' ')" >>"$OUT/result.txt"
fi

{
  echo
  echo "ratios of the medians above:"
  printf '%s\n' "${summary[@]}"
  if [[ " ${keys[*]} " == *" meshentry-obs "* ]]; then
    echo "access log lines $(wc -l <"$OUT/access.log"), istio_requests_total" \
      "$(curl -fsS "http://$MESH_OBS_ADMIN/stats/prometheus" | awk '/^istio_requests_total/ { n += $NF } END { print n + 0 }')"
  fi
} >>"$OUT/result.txt"
cat "$OUT/result.txt"
