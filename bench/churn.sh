#!/usr/bin/env bash
# Measures connection churn, meshentry against HAProxy and a direct connection, in one run on
# 127.0.0.1: a new client connection per request.
#   (a) HTTP: wrk -t1 with `Connection: close`, at -c16 and -c64, through meshentry's forward proxy
#       and HAProxy (mode http, both keeping their upstream connections pooled), to the same
#       keep-alive backend; connections/s, p99 and the proxy's CPU µs per connection.
#   (b) Tunnels: benchtool churn opens a connection per exchange and reads 128 bytes that the far
#       end sends before it closes. meshentry gets a CONNECT tunnel per connection. HAProxy does not
#       end a CONNECT itself, so it gets it twice: in mode tcp, relaying the same bytes, which spares
#       it and its client the CONNECT head and its answer (a floor for meshentry, not a
#       like-for-like); and in mode http, forwarding each CONNECT to a source that answers it
#       (`source --answer-connect`) and tunnelling after the 200, where its client sends the same
#       head and reads the same answer as meshentry's (row "CONNECT, forwarded"; the CONNECT rows'
#       "×haproxy CONNECT" line). The like-for-likes of mode tcp: a second meshentry as a Gateway
#       with a VirtualService tcp route on a plain TCP port (no CONNECT, as HAProxy), the same with
#       --gateway-event-loop (its port relayed on evloop), and `benchtool pipe`, net.Dial and two
#       io.Copy: the floor of a relay on Go's net.
#       meshentry serves its forward port on evloop (--forward-event-loop, on by default): CONNECT
#       tunnels relayed there, HTTP requests served by its loop engine. A third meshentry runs with
#       --forward-event-loop=false, every connection on the goroutine engine over Go's net (rows
#       "goroutine engine" in (a) and (b)).
#       `benchtool evpipe` relays on raw epoll, one locked thread per core, as HAProxy does: what
#       Go can reach once its netpoller is out of the path; `benchtool evhand` accepts and dials
#       on Go's net and hands the sockets to such a loop: what the loop saves on the relay alone.
# CPU is read from /proc/PID/stat (user+system) over each run; wall figures move with whatever
# else the machine runs, CPU per connection much less. The tunnel rows also give the client's
# own CPU per connection (benchtool churn's getrusage): on this 2-core machine client, proxy and
# source share the cores, so a row whose client works more makes fewer connections a second
# with the same proxy; "+client×ha" is proxy and client together against HAProxy's two.
#
#   bench/churn.sh                       # 5 s per run
#   ROUNDS=5 bench/churn.sh              # 5 rounds (3 by default) of every row of each table, the order
#                                        # rotated by one each round: medians (even ROUNDS: the mean of
#                                        # the middle two), ratios of medians, each round's ratios below
#   DURATION=10s THREADS=1 bench/churn.sh  # both proxies on one thread (HAProxy nbthread,
#                                          # meshentry GOMAXPROCS)
#   BASE=e5c7b4c bench/churn.sh          # also meshentry built from that commit, same run
#   PROFILE=1 bench/churn.sh             # also a CPU profile of meshentry during a -c16 run of (a)
#                                        # and of (b) after their rounds, not counted in the tables;
#                                        # the top to $OUT/profile-{http,tunnel}.txt, and of the
#                                        # --forward-event-loop=false instance: profile-loop-{http,tunnel}.txt
#   SYSCALLS=1 bench/churn.sh            # also strace -c -f each proxy during a -c16 run of (a) and
#                                        # (b): syscalls (and failed ones) per connection, side by side
#                                        # (the gateway and the raw-epoll relay too in (b))
#   ROWS=tunnel bench/churn.sh           # only (b); ROWS=http only (a)
#   CONNS="16 64"                        # the client counts of each part
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5s}
ROWS=${ROWS:-http tunnel}
CONNS=${CONNS:-16 64}
STRACE_DURATION=${STRACE_DURATION:-3s}
ROUNDS=${ROUNDS:-3}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS=$ROUNDS: want a count of rounds, 1 or more" >&2; exit 2; }
OUT=${OUT:-bench/out/churn}
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)"

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v haproxy >/dev/null || need+=(haproxy)
if [ "${SYSCALLS:-}" = 1 ]; then command -v strace >/dev/null || need+=(strace); fi
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
go build -o "$OUT/meshentry" ./cmd/meshentry
go build -o "$OUT/benchtool" ./bench/benchtool
if [ -n "${BASE:-}" ]; then
  rm -rf "$OUT/base-src" && mkdir -p "$OUT/base-src"
  git archive "$BASE" | tar -x -C "$OUT/base-src"
  out_abs=$(cd "$OUT" && pwd)
  (cd "$OUT/base-src" && go build -o "$out_abs/meshentry-base" ./cmd/meshentry)
fi

# Below the ephemeral range (32768-), so that no client connection holds the port.
P=${PORT_BASE:-23400}
BACKEND=127.0.0.1:$((P + 80))
SOURCE=127.0.0.1:$((P + 90))
HA_HTTP=127.0.0.1:$((P + 81))
HA_TCP=127.0.0.1:$((P + 91))
SOURCE_CONNECT=127.0.0.1:$((P + 97)) # the source that answers a CONNECT itself
HA_CONNECT=127.0.0.1:$((P + 98))     # HAProxy's mode http, forwarding each CONNECT to it
MESH=127.0.0.1:$((P + 1))
MESH_ADMIN=127.0.0.1:$((P + 0))
MESH_BASE=127.0.0.1:$((P + 3))
MESH_BASE_ADMIN=127.0.0.1:$((P + 2))
GW=127.0.0.1:$((P + 93))          # the meshentry gateway's TCP server port
GW_FWD=127.0.0.1:$((P + 5))
GW_ADMIN=127.0.0.1:$((P + 4))
GOPIPE=127.0.0.1:$((P + 92))      # plain Go io.Copy relay
EVPIPE=127.0.0.1:$((P + 94))      # Go relay on raw epoll, outside the netpoller
EVHAND=127.0.0.1:$((P + 95))      # Go net accepts and dials, raw epoll relays
GWLOOP=127.0.0.1:$((P + 96))      # the gateway's TCP server port with --gateway-event-loop
GWLOOP_FWD=127.0.0.1:$((P + 7))
GWLOOP_ADMIN=127.0.0.1:$((P + 6))
MESH_LOOP=127.0.0.1:$((P + 9))    # meshentry with --forward-event-loop=false
MESH_LOOP_ADMIN=127.0.0.1:$((P + 8))

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$OUT/benchtool" http "$BACKEND" & pids+=($!)
"$OUT/benchtool" source "$SOURCE" 128 & pids+=($!)
"$OUT/benchtool" source "$SOURCE_CONNECT" 128 --answer-connect & pids+=($!)

cat >"$OUT/haproxy.cfg" <<CFG
global
  maxconn 4096
${THREADS:+  nbthread $THREADS}
defaults
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend http_in
  mode http
  bind $HA_HTTP
  option http-keep-alive
  default_backend http_out
backend http_out
  mode http
  http-reuse always
  server b1 $BACKEND
frontend tcp_in
  mode tcp
  bind $HA_TCP
  default_backend tcp_out
backend tcp_out
  mode tcp
  server s1 $SOURCE
frontend connect_in
  mode http
  bind $HA_CONNECT
  timeout tunnel 60s
  default_backend connect_out
backend connect_out
  mode http
  server c1 $SOURCE_CONNECT
CFG
haproxy -f "$OUT/haproxy.cfg" -db >"$OUT/haproxy.log" 2>&1 & pids+=($!)
HA_PID=$!

cat >"$OUT/churn.yaml" <<CFG
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: churn-http}
spec:
  hosts: [bench.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: ${BACKEND##*:}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: churn-tunnel}
spec:
  hosts: [source.local]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tls: ${SOURCE##*:}}}]
CFG
start_mesh() { # BIN LISTEN ADMIN LOG [FLAG]
  ${THREADS:+env GOMAXPROCS=$THREADS} "$1" run -f "$OUT/churn.yaml" --listen "$2" --admin "$3" --log-level warn \
    --access-log off --istio-metrics=false ${5:-} >"$4" 2>&1 &
  pids+=($!)
}
start_mesh "$OUT/meshentry" "$MESH" "$MESH_ADMIN" "$OUT/meshentry.log" ${PROFILE:+--admin-pprof}
MESH_PID=$!
start_mesh "$OUT/meshentry" "$MESH_LOOP" "$MESH_LOOP_ADMIN" "$OUT/meshentry-loop.log" "--forward-event-loop=false${PROFILE:+ --admin-pprof}"
LOOP_PID=$!
BASE_PID=
if [ -n "${BASE:-}" ]; then
  start_mesh "$OUT/meshentry-base" "$MESH_BASE" "$MESH_BASE_ADMIN" "$OUT/meshentry-base.log"
  BASE_PID=$!
fi
# (b)'s like-for-likes of HAProxy's mode tcp: meshentry as a gateway, relaying a plain TCP port to
# the source with a VirtualService tcp route, and the plain Go relay.
GW_PID='' GWLOOP_PID='' GOPIPE_PID='' EVPIPE_PID='' EVHAND_PID=''
case " $ROWS " in *" tunnel "*)
  cat >"$OUT/gw.yaml" <<CFG
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: src, namespace: egress}
spec:
  hosts: [source.local]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: ${SOURCE##*:}}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - {port: {number: 9000, name: tcp, protocol: TCP}, hosts: ["*"]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: src, namespace: egress}
spec:
  hosts: ["*"]
  gateways: [istio-system/gw]
  tcp:
  - match: [{port: 9000}]
    route: [{destination: {host: source.local, port: {number: 9000}}}]
CFG
  ${THREADS:+env GOMAXPROCS=$THREADS} "$OUT/meshentry" run -f "$OUT/gw.yaml" --gateway --labels istio=egressgateway \
    --gateway-bind 127.0.0.1 --gateway-port "9000=${GW##*:}" --listen "$GW_FWD" --admin "$GW_ADMIN" --log-level warn \
    --access-log off --istio-metrics=false >"$OUT/meshentry-gateway.log" 2>&1 &
  pids+=($!) GW_PID=$!
  # The same gateway with its server ports on evloop: the route above is its fast path.
  ${THREADS:+env GOMAXPROCS=$THREADS} "$OUT/meshentry" run -f "$OUT/gw.yaml" --gateway --labels istio=egressgateway \
    --gateway-bind 127.0.0.1 --gateway-port "9000=${GWLOOP##*:}" --gateway-event-loop --listen "$GWLOOP_FWD" \
    --admin "$GWLOOP_ADMIN" --log-level warn --access-log off --istio-metrics=false >"$OUT/meshentry-gateway-loop.log" 2>&1 &
  pids+=($!) GWLOOP_PID=$!
  ${THREADS:+env GOMAXPROCS=$THREADS} "$OUT/benchtool" pipe "$GOPIPE" "$SOURCE" &
  pids+=($!) GOPIPE_PID=$!
  ${THREADS:+env GOMAXPROCS=$THREADS} "$OUT/benchtool" evpipe "$EVPIPE" "$SOURCE" &
  pids+=($!) EVPIPE_PID=$!
  ${THREADS:+env GOMAXPROCS=$THREADS} "$OUT/benchtool" evhand "$EVHAND" "$SOURCE" &
  pids+=($!) EVHAND_PID=$!
  ;;
esac
ready=
for _ in $(seq 100); do
  curl -fsS -o /dev/null "http://$MESH_ADMIN/ready" 2>/dev/null && curl -fsS -o /dev/null "http://$HA_HTTP/" 2>/dev/null &&
    curl -fsS -o /dev/null "http://$MESH_LOOP_ADMIN/ready" 2>/dev/null &&
    { [ -z "$BASE_PID" ] || curl -fsS -o /dev/null "http://$MESH_BASE_ADMIN/ready" 2>/dev/null; } &&
    { [ -z "$GW_PID" ] || curl -fsS -o /dev/null "http://$GW_ADMIN/ready" 2>/dev/null; } &&
    { [ -z "$GWLOOP_PID" ] || curl -fsS -o /dev/null "http://$GWLOOP_ADMIN/ready" 2>/dev/null; } && { ready=1; break; }
  sleep 0.1
done
[ -n "$ready" ] || { echo "meshentry or HAProxy did not come up; see $OUT/*.log" >&2; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)

# http_run NAME CONNS URL PID [HOST]: prints "conn/s p99_us cpu_us_per_conn" for wrk with
# Connection: close (cpu "-" without a PID); wrk's output to $OUT/wrk-NAME.txt.
http_run() {
  local name=$1 conns=$2 url=$3 pid=$4 host=${5:-} hdr=(-H "Connection: close")
  [ -n "$host" ] && hdr+=(-H "Host: $host")
  wrk -t1 -c"$conns" -d1s "${hdr[@]}" "$url" >/dev/null # warm up the pools
  local c0=0; [ "$pid" != - ] && c0=$(cpu_ticks "$pid")
  wrk -t1 -c"$conns" -d"$DURATION" --latency "${hdr[@]}" "$url" >"$OUT/wrk-$name.txt" || return 1
  local c1=0; [ "$pid" != - ] && c1=$(cpu_ticks "$pid")
  awk -v c0="$c0" -v c1="$c1" -v tck="$TCK" -v pid="$pid" '
    function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return (v+0)*1000; if (v ~ /s$/) return (v+0)*1e6; return v }
    /^ +99%/ { p99 = us($2) }
    /requests in/ { reqs = $1 }
    /^Requests\/sec/ { rps = $2 }
    /Non-2xx/ { bad = $NF }
    /Socket errors/ { sockerr = $0 }
    END {
      if (bad > 0) { print "wrk saw non-2xx responses" > "/dev/stderr"; exit 1 }
      if (sockerr != "") print "wrk: " sockerr > "/dev/stderr"
      cpu = (pid == "-") ? "-" : sprintf("%.1f", (c1 - c0) / tck * 1e6 / reqs)
      printf "%.0f %.0f %s\n", rps, p99, cpu
    }' "$OUT/wrk-$name.txt"
}

# tunnel_run NAME CONNS ADDR PID [CONNECT]: the same for benchtool churn, its output to
# $OUT/churn-NAME.txt.
tunnel_run() {
  local name=$1 conns=$2 addr=$3 pid=$4 connect=() out
  [ -n "${5:-}" ] && connect=(--connect "$5")
  "$OUT/benchtool" churn "$addr" -c "$conns" -d 1s "${connect[@]}" >/dev/null
  local c0=0; [ "$pid" != - ] && c0=$(cpu_ticks "$pid")
  "$OUT/benchtool" churn "$addr" -c "$conns" -d "$DURATION" "${connect[@]}" >"$OUT/churn-$name.txt" || return 1
  local c1=0; [ "$pid" != - ] && c1=$(cpu_ticks "$pid")
  out=$(cat "$OUT/churn-$name.txt")
  awk -v c0="$c0" -v c1="$c1" -v tck="$TCK" -v pid="$pid" -v out="$out" 'BEGIN {
    split(out, f, " ")
    if (f[5] > 0) print "benchtool churn: " f[5] " failed connections" > "/dev/stderr"
    cpu = (pid == "-") ? "-" : sprintf("%.1f", (c1 - c0) / tck * 1e6 / f[1])
    printf "%.0f %.0f %s %s\n", f[2], f[4], cpu, f[6]
  }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a != "-") printf "%.2f", a / b; else print "-" }'; }
# sum A B: A + B, "-" when either is.
sum() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "-" && b != "-") printf "%.1f", a + b; else print "-" }'; }
row() { printf "%-40s %10s %10s %14s %10s %10s" "${@:1:6}"; [ $# -gt 6 ] && printf " %14s %12s" "${@:7:2}"; printf "\n"; }

# profile_run KIND ADMIN RUN...: with PROFILE=1, at -c16, RUN (a run of the meshentry serving
# pprof at ADMIN, for KIND: http, tunnel, loop-http or loop-tunnel) once more after the rounds,
# not counted in them, under a CPU profile of it; the profile's top to $OUT/profile-KIND.txt.
profile_run() {
  [ "${PROFILE:-}" = 1 ] && [ "$c" = 16 ] || return 0
  local kind=$1 admin=$2 prof
  shift 2
  curl -fsS -o "$OUT/meshentry-$kind.pprof" "http://$admin/debug/pprof/profile?seconds=${DURATION%s}" &
  prof=$!
  "$@" >/dev/null || true
  wait "$prof" || true
  go tool pprof -top -nodecount=40 "$OUT/meshentry" "$OUT/meshentry-$kind.pprof" >"$OUT/profile-$kind.txt" 2>/dev/null || true
}

# strace_run NAME PID CONNS-COUNTING-CMD...: runs the command for $STRACE_DURATION with strace -c -f
# attached to every thread of PID and writes "syscall calls/conn failed/conn" lines (failed is
# mostly EAGAIN) to $OUT/syscalls-NAME.txt. The command prints its connection count as its first
# word. strace slows the proxy down several times: the counts per connection are what it is for.
strace_run() {
  local name=$1 pid=$2 raw="$OUT/strace-$1.txt" n
  shift 2
  strace -c -f -q -p "$pid" -o "$raw" &
  local sp=$!
  sleep 1 # attached to every thread before the first connection
  n=$("$@")
  kill -INT "$sp"
  wait "$sp" || true
  awk -v conns="$n" '
    $1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" {
      errs = (NF == 6) ? $5 : 0
      printf "%s %.2f %.2f\n", $NF, $4 / conns, errs / conns
    }' "$raw" >"$OUT/syscalls-$name.txt"
}
wrk_count() { # URL [HOST]: wrk with Connection: close; prints the requests made
  local hdr=(-H "Connection: close")
  [ -n "${2:-}" ] && hdr+=(-H "Host: $2")
  wrk -t1 -c16 -d"$STRACE_DURATION" "${hdr[@]}" "$1" | awk '/requests in/ { print $1 }'
}
churn_count() { # ADDR [CONNECT]: benchtool churn; prints the connections made
  local connect=()
  [ -n "${2:-}" ] && connect=(--connect "$2")
  "$OUT/benchtool" churn "$1" -c 16 -d "$STRACE_DURATION" "${connect[@]}" | awk '{ print $1 }'
}
# shellcheck source=bench/syscalls.sh
. bench/syscalls.sh

# http_row KEY / tunnel_row KEY: the measured run (after its warm-up) of row KEY of (a) / (b) at
# $c connections in round $ROUND.
http_row() {
  local tag=$1-c$c-r$ROUND
  case $1 in
    direct) http_run "$tag" "$c" "http://$BACKEND/" - ;;
    haproxy) http_run "$tag" "$c" "http://$HA_HTTP/" "$HA_PID" ;;
    meshentry) http_run "$tag" "$c" "http://$MESH/" "$MESH_PID" bench.local ;;
    base) http_run "$tag" "$c" "http://$MESH_BASE/" "$BASE_PID" bench.local ;;
    loop) http_run "$tag" "$c" "http://$MESH_LOOP/" "$LOOP_PID" bench.local ;;
  esac
}
tunnel_row() {
  local tag=$1-c$c-r$ROUND
  case $1 in
    direct) tunnel_run "$tag" "$c" "$SOURCE" - ;;
    haproxy) tunnel_run "$tag" "$c" "$HA_TCP" "$HA_PID" ;;
    haconnect) tunnel_run "$tag" "$c" "$HA_CONNECT" "$HA_PID" source.local:443 ;;
    gateway) tunnel_run "$tag" "$c" "$GW" "$GW_PID" ;;
    gwloop) tunnel_run "$tag" "$c" "$GWLOOP" "$GWLOOP_PID" ;;
    gopipe) tunnel_run "$tag" "$c" "$GOPIPE" "$GOPIPE_PID" ;;
    evpipe) tunnel_run "$tag" "$c" "$EVPIPE" "$EVPIPE_PID" ;;
    evhand) tunnel_run "$tag" "$c" "$EVHAND" "$EVHAND_PID" ;;
    meshentry) tunnel_run "$tag" "$c" "$MESH" "$MESH_PID" source.local:443 ;;
    base) tunnel_run "$tag" "$c" "$MESH_BASE" "$BASE_PID" source.local:443 ;;
    loop) tunnel_run "$tag" "$c" "$MESH_LOOP" "$LOOP_PID" source.local:443 ;;
  esac
}
# table KIND KEY...: the table of KIND (http or tunnel) at $c connections from $ROUNDS rounds of
# its rows, then each meshentry row's ratios to HAProxy round by round; labels from label[KEY].
table() {
  local kind=$1 rounds="$OUT/rounds-$1-c$c.txt" k v1 v2 v3 v4
  shift
  run_rounds "$rounds" "${kind}_row" "$@"
  local -A rate=() p99=() cpu=() client=()
  while read -r k v1 v2 v3 v4; do rate[$k]=$v1 p99[$k]=$v2 cpu[$k]=$v3 client[$k]=$v4; done < <(rounds_median "$rounds")
  for k in "$@"; do
    local both=() # the tunnel rows: the client's CPU too, and the two together against HAProxy's
    [ "$kind" = tunnel ] && both=("${client[$k]:--}" "$(ratio "$(sum "${cpu[$k]:--}" "${client[$k]:--}")" \
      "$(sum "${cpu[haproxy]:--}" "${client[haproxy]:--}")")")
    row "${label[$k]}" "${rate[$k]:--}" "${p99[$k]:--}" "${cpu[$k]:--}" \
      "$(ratio "${rate[$k]:--}" "${rate[haproxy]:--}")" "$(ratio "${cpu[$k]:--}" "${cpu[haproxy]:--}")" "${both[@]}"
  done
  echo "CPU steal per round (the hypervisor's share of the machine): $(rounds_steal "$rounds")"
  for k in "$@"; do
    case $k in direct | haproxy | haconnect | gopipe | evpipe | evhand) continue ;; esac
    echo "${label[$k]} per round ×haproxy conn/s: $(rounds_ratios "$rounds" "$k" haproxy 1); CPU×ha: $(rounds_ratios "$rounds" "$k" haproxy 3)"
  done
  [ "$kind" = tunnel ] || return 0
  # The CONNECT rows against HAProxy doing a CONNECT too, its client paying the same head and answer.
  for k in meshentry loop base; do
    [ -n "${rate[$k]:-}" ] || continue
    echo "${label[$k]} ×haproxy CONNECT: conn/s $(ratio "${rate[$k]}" "${rate[haconnect]:--}"), CPU $(ratio "${cpu[$k]:--}" "${cpu[haconnect]:--}"), +client $(ratio "$(sum "${cpu[$k]:--}" "${client[$k]:--}")" "$(sum "${cpu[haconnect]:--}" "${client[haconnect]:--}")"); per round conn/s: $(rounds_ratios "$rounds" "$k" haconnect 1)"
  done
}
declare -A label

{
  echo "new connection per request, ${THREADS:+THREADS=$THREADS, }$(rounds_note), $DURATION per run"
  for c in $CONNS; do
    case " $ROWS " in *" http "*) ;; *) break ;; esac
    echo
    row "HTTP, wrk -t1 -c$c, Connection: close" "conn/s" "p99 µs" "CPU µs/conn" "×haproxy" "CPU×ha"
    label=([direct]="direct (Go net/http backend)" [haproxy]="haproxy" [meshentry]="meshentry (forward proxy)"
      [base]="meshentry at ${BASE:-}" [loop]="meshentry (forward, goroutine engine)")
    keys=(direct haproxy meshentry loop)
    [ -n "$BASE_PID" ] && keys+=(base)
    table http "${keys[@]}"
    profile_run http "$MESH_ADMIN" http_run "profile-meshentry-c$c" "$c" "http://$MESH/" "$MESH_PID" bench.local
    profile_run loop-http "$MESH_LOOP_ADMIN" http_run "profile-loop-c$c" "$c" "http://$MESH_LOOP/" "$LOOP_PID" bench.local
  done
  for c in $CONNS; do
    case " $ROWS " in *" tunnel "*) ;; *) break ;; esac
    echo
    row "tunnel per connection, -c$c, 128 B" "conn/s" "p99 µs" "CPU µs/conn" "×haproxy" "CPU×ha" "client µs/conn" "+client×ha"
    label=([direct]="direct" [haproxy]="haproxy (mode tcp, no CONNECT)" [haconnect]="haproxy (CONNECT, forwarded)"
      [gateway]="meshentry (gateway TCP server)"
      [gwloop]="meshentry (gateway TCP, event loop)"
      [gopipe]="plain Go relay (io.Copy)" [evpipe]="Go relay on raw epoll"
      [evhand]="Go net setup, epoll relay" [meshentry]="meshentry (CONNECT tunnel)" [base]="meshentry at ${BASE:-} (CONNECT)"
      [loop]="meshentry (CONNECT, goroutine engine)")
    keys=(direct haproxy haconnect gateway gwloop gopipe evpipe evhand meshentry loop)
    [ -n "$BASE_PID" ] && keys+=(base)
    table tunnel "${keys[@]}"
    profile_run tunnel "$MESH_ADMIN" tunnel_run "profile-meshentry-c$c" "$c" "$MESH" "$MESH_PID" source.local:443
    profile_run loop-tunnel "$MESH_LOOP_ADMIN" tunnel_run "profile-loop-c$c" "$c" "$MESH_LOOP" "$LOOP_PID" source.local:443
  done
} | tee "$OUT/result.txt"

if [ "${SYSCALLS:-}" = 1 ]; then
  for kind in $ROWS; do
    echo "strace -c -f during $kind, -c16, $STRACE_DURATION each" >&2
    if [ "$kind" = http ]; then
      strace_run haproxy-http "$HA_PID" wrk_count "http://$HA_HTTP/"
      strace_run meshentry-http "$MESH_PID" wrk_count "http://$MESH/" bench.local
      strace_run loop-http "$LOOP_PID" wrk_count "http://$MESH_LOOP/" bench.local
      [ -n "$BASE_PID" ] && strace_run base-http "$BASE_PID" wrk_count "http://$MESH_BASE/" bench.local
    else
      strace_run haproxy-tunnel "$HA_PID" churn_count "$HA_TCP"
      strace_run haconnect-tunnel "$HA_PID" churn_count "$HA_CONNECT" source.local:443
      strace_run gateway-tunnel "$GW_PID" churn_count "$GW"
      strace_run gwloop-tunnel "$GWLOOP_PID" churn_count "$GWLOOP"
      strace_run evpipe-tunnel "$EVPIPE_PID" churn_count "$EVPIPE"
      strace_run meshentry-tunnel "$MESH_PID" churn_count "$MESH" source.local:443
      strace_run loop-tunnel "$LOOP_PID" churn_count "$MESH_LOOP" source.local:443
      [ -n "$BASE_PID" ] && strace_run base-tunnel "$BASE_PID" churn_count "$MESH_BASE" source.local:443
    fi
    cols=("haproxy=$OUT/syscalls-haproxy-$kind.txt")
    [ "$kind" = tunnel ] && cols+=("haconnect=$OUT/syscalls-haconnect-tunnel.txt" "gateway=$OUT/syscalls-gateway-tunnel.txt" "gwloop=$OUT/syscalls-gwloop-tunnel.txt" "evpipe=$OUT/syscalls-evpipe-tunnel.txt")
    cols+=("meshentry=$OUT/syscalls-meshentry-$kind.txt" "goroutine=$OUT/syscalls-loop-$kind.txt")
    [ -n "$BASE_PID" ] && cols+=("base=$OUT/syscalls-base-$kind.txt")
    {
      echo
      echo "Syscalls per connection, $kind -c16 (calls (failed)), strace -c -f"
      syscall_table "${cols[@]}"
    } | tee -a "$OUT/result.txt"
  done
fi
