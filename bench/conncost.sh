#!/usr/bin/env bash
# Measures what an idle connection costs a proxy in resident memory, meshentry against HAProxy, in
# one run on 127.0.0.1:
#   (a) idle keep-alive client connections: N clients each send one request, get the answer, and
#       stay connected; the proxy's RSS growth over N;
#   (b) idle pooled upstream connections: N clients each send one slow request at once (the
#       backend answers /slow after 2 s), so the proxy opens N upstream connections, which are
#       pooled when the answers are in; the growth over (a) is what the pooled connections cost.
#   (c) the same at N pooled connections, the slow requests multiplexed over N/100 h2c clients
#       (below), since HTTP/1.1 clients beside them would pass the descriptor limit.
# The upstream is one ServiceEntry with 200 endpoint addresses (127.0.x.y, one backend on
# 0.0.0.0), since meshentry keeps at most 64 idle connections per endpoint.
#
# Each figure is taken twice: after the proxy settled for 3 s, and again after it was asked to
# return its free heap pages to the system (meshentry: SIGUSR2 with MESHENTRY_BENCH_FREE_OS_MEMORY=1,
# cmd/meshentry/benchhook_unix.go; HAProxy keeps its pools and is read again as it is). The
# second is what the idle connections hold; the first also holds the free pages of the in-flight
# peak of (b), 9,000 requests at once with 32 KiB of buffers each, which Go's scavenger returns
# only gradually.
#
#   bench/conncost.sh                  # N=10000
#   N=4000 bench/conncost.sh
#   BASE=e5c7b4c bench/conncost.sh     # also a meshentry built from that commit, same run
#   MESH_FLAGS=--forward-event-loop=false bench/conncost.sh   # meshentry run with these flags
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-10000}
# Holding NUP pooled connections costs a proxy 2×NUP descriptors (the clients' and the pooled
# ones); this machine's hard limit is 20,000 per process, so (b) runs with at most 9,000.
NUP=${NUP:-$((N < 9000 ? N : 9000))}
# HAProxy wants twice its maxconn in descriptors and will not start above the hard limit, so its
# client row holds at most 9,000 connections too.
HA_N=$((N < 9000 ? N : 9000))
OUT=${OUT:-bench/out/conncost}
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)"

command -v haproxy >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null; }
go build -o "$OUT/meshentry" ./cmd/meshentry
go build -o "$OUT/benchtool" ./bench/benchtool
PROXIES="meshentry haproxy"
if [ -n "${BASE:-}" ]; then
  # The base commit, built with the same bench hook (which changes nothing it serves).
  rm -rf "$OUT/base-src" && mkdir -p "$OUT/base-src"
  git archive "$BASE" | tar -x -C "$OUT/base-src"
  cp cmd/meshentry/benchhook_unix.go "$OUT/base-src/cmd/meshentry/"
  out_abs=$(cd "$OUT" && pwd) # OUT may be relative or absolute
  (cd "$OUT/base-src" && go build -o "$out_abs/meshentry-base" ./cmd/meshentry)
  PROXIES="base meshentry haproxy"
fi

# Below the ephemeral range (32768-), so that no client connection holds the port.
P=${PORT_BASE:-24400}
BACKEND_PORT=$((P + 80))
MESH=127.0.0.1:$((P + 1))
MESH_ADMIN=127.0.0.1:$P
HA=127.0.0.1:$((P + 83))
# Where each proxy takes h2c with prior knowledge: meshentry tells it apart on its one listener.
declare -A H2_ADDR=([$MESH]=$MESH [$HA]=127.0.0.1:$((P + 84)))

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$OUT/benchtool" http "0.0.0.0:$BACKEND_PORT" & pids+=($!)

{
  cat <<CFG
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: idle}
spec:
  hosts: [idle.local]
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: $BACKEND_PORT}]
  resolution: STATIC
  endpoints:
CFG
  for i in $(seq 1 200); do echo "  - address: 127.0.$((i / 250)).$((i % 250 + 2))"; done
} >"$OUT/idle.yaml"
start_base() { MESH_BIN="$OUT/meshentry-base" start_meshentry; }
start_meshentry() {
  MESHENTRY_BENCH_FREE_OS_MEMORY=1 "${MESH_BIN:-$OUT/meshentry}" run -f "$OUT/idle.yaml" --listen "$MESH" --admin "$MESH_ADMIN" --log-level warn \
    --access-log off --istio-metrics=false --max-connections $((N * 3)) ${MESH_FLAGS:-} >"$OUT/meshentry.log" 2>&1 &
  PROXY_PID=$! ADDR=$MESH
  pids+=($PROXY_PID)
  for _ in $(seq 100); do curl -fsS -o /dev/null -x "http://$MESH" http://idle.local/ 2>/dev/null && return; sleep 0.1; done
  echo "meshentry did not come up: $OUT/meshentry.log" >&2; exit 1
}

{
  cat <<CFG
global
  maxconn $((HA_N + 500))
  # The clients' and the pooled connections may need more descriptors than this machine's hard
  # limit (20,000); HAProxy would refuse to start rather than run within it.
  ulimit-n $(ulimit -Hn)
defaults
  mode http
  timeout connect 5s
  timeout client 120s
  timeout server 120s
frontend idle_in
  bind $HA
  bind ${H2_ADDR[$HA]} proto h2
  option http-keep-alive
  default_backend idle_out
backend idle_out
  http-reuse always
  balance roundrobin
CFG
  for i in $(seq 1 200); do echo "  server s$i 127.0.$((i / 250)).$((i % 250 + 2)):$BACKEND_PORT"; done
} >"$OUT/haproxy.cfg"
start_haproxy() {
  haproxy -f "$OUT/haproxy.cfg" -db >"$OUT/haproxy.log" 2>&1 &
  PROXY_PID=$! ADDR=$HA
  pids+=($PROXY_PID)
  for _ in $(seq 100); do curl -fsS -o /dev/null "http://$HA/" 2>/dev/null && return; sleep 0.1; done
  echo "haproxy did not come up: $OUT/haproxy.log" >&2; exit 1
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# hold PROXY_ADDR PID PATH COUNT: prints the proxy's RSS growth in KiB while COUNT clients hold
# idle connections that each made one request for PATH: settled, and after the free pages were
# returned.
# With STREAMS set, the clients speak h2c instead, STREAMS requests to a connection (clients_h2).
hold() {
  local addr=$1 pid=$2 path=$3 count=$4 r0 r1 r2
  # Warm up with a few connections on the same path first: the code the proxy runs is paged in
  # on first use, megabytes of its binary that no connection holds.
  clients "$addr" 64 "$path" >"$OUT/warm.out" 2>&1 & local wpid=$!
  for _ in $(seq 100); do grep -q ready "$OUT/warm.out" && break; sleep 0.1; done
  kill $wpid; wait $wpid 2>/dev/null || true
  sleep 2
  [ "$HOOK" = 1 ] && kill -USR2 "$pid" && sleep 1
  r0=$(rss_kib "$pid")
  clients "$addr" "$count" "$path" >"$OUT/idle.out" 2>&1 & local ipid=$!
  for _ in $(seq 600); do grep -q ready "$OUT/idle.out" && break; sleep 0.1; done
  grep -q ready "$OUT/idle.out" || { echo "clients did not get their answers: $(cat "$OUT/idle.out")" >&2; kill $ipid; exit 1; }
  sleep 3 # let the proxy settle (connections park after an idle second, a GC cycle)
  r1=$(rss_kib "$pid")
  [ "$HOOK" = 1 ] && kill -USR2 "$pid"
  sleep 1
  r2=$(rss_kib "$pid")
  kill $ipid; wait $ipid 2>/dev/null || true
  sleep 2
  echo $((r1 - r0)) $((r2 - r0))
}

# clients ADDR COUNT PATH: COUNT requests for PATH held open, over HTTP/1.1 keep-alive (a connection
# each) or, with STREAMS set, multiplexed STREAMS to an h2c connection.
clients() {
  if [ -n "${STREAMS:-}" ]; then
    exec "$OUT/benchtool" idle-h2 "${H2_ADDR[$1]}" idle.local "$2" "$3" "$STREAMS"
  fi
  exec "$OUT/benchtool" idle "$1" idle.local "$2" "$3"
}

# measure PROXY PATH COUNT: the RSS growth of a freshly started PROXY while COUNT clients hold
# idle connections that made one request for PATH each.
# It runs in a subshell (its output is read), whose exit, failed or not, must stop the proxy: the
# main shell's cleanup does not know its pid.
measure() {
  HOOK=0
  [ "$1" != haproxy ] && HOOK=1
  start_"$1"
  trap 'kill "$PROXY_PID" 2>/dev/null || true' EXIT
  hold "$ADDR" "$PROXY_PID" "$2" "$3"
  kill "$PROXY_PID"; wait "$PROXY_PID" 2>/dev/null || true
}

printf '%-46s %6s %12s %12s %12s\n' "idle connections (KiB)" "count" "RSS settled" "per conn" "released"
# Each measure is read whole ("$(...)"), so the next one starts only once its proxy has exited:
# a read from < <(...) returned at the first line, while the proxy was still draining on its ports.
for proxy in $PROXIES; do
  n=$N
  [ $proxy = haproxy ] && n=$HA_N
  read -r client client_r <<<"$(measure $proxy / "$n")"
  read -r clientup clientup_r <<<"$(measure $proxy / "$NUP")"
  read -r both both_r <<<"$(measure $proxy /slow "$NUP")"
  awk -v p=$proxy -v c="$client" -v cr="$client_r" -v cu="$clientup" -v cur="$clientup_r" \
    -v b="$both" -v br="$both_r" -v n="$n" -v nu="$NUP" 'BEGIN {
    printf "%-46s %6d %12d %12.1f %12.1f\n", p ", keep-alive client", n, c, c / n, cr / n
    printf "%-46s %6d %12d %12.1f %12.1f\n", p ", keep-alive client + pooled upstream", nu, b, b / nu, br / nu
    printf "%-46s %6d %12s %12.1f %12.1f\n", p ", pooled upstream alone", nu, "-", (b - cu) / nu, (br - cur) / nu
  }'
done

# (c) pooled upstreams at N, which (b) cannot reach within the descriptor limit: the N slow
# requests come multiplexed over N/100 h2c client connections, each stream forwarded over its own
# HTTP/1.1 upstream connection. Its base is as many h2c clients with one request each (and so
# about as many pooled upstreams): the growth between the two is N - N/100 pooled connections.
H2_STREAMS=${H2_STREAMS:-100}
NH2=${NH2:-$N}
H2_CLIENTS=$(((NH2 + H2_STREAMS - 1) / H2_STREAMS))
for proxy in $PROXIES; do
  read -r base base_r <<<"$(STREAMS=1 measure $proxy / "$H2_CLIENTS")"
  read -r both both_r <<<"$(STREAMS=$H2_STREAMS measure $proxy /slow "$NH2")"
  awk -v p=$proxy -v b="$both" -v br="$both_r" -v c="$base" -v cr="$base_r" -v n="$NH2" -v k="$H2_CLIENTS" 'BEGIN {
    printf "%-46s %6d %12d %12.1f %12.1f\n", p ", pooled upstream, h2c clients (" k ")", n, b, (b - c) / (n - k), (br - cr) / (n - k)
  }'
done
