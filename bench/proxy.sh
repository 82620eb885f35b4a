#!/usr/bin/env bash
# Measures meshentry's forward proxy against a direct connection and HAProxy, in one run, on
# 127.0.0.1: (a) HTTP/1.1 keep-alive requests/s, p50/p99 latency and proxy CPU per request with one
# wrk thread; (b) the throughput of a 1 GiB stream through a TCP/TLS passthrough (CONNECT tunnel for
# meshentry, mode tcp for HAProxy). Installs wrk and haproxy from the distribution when missing.
#
#   bench/proxy.sh            # 10 s per HTTP run, 1 GiB streams
#   DURATION=5s CONNS=16 BYTES=1073741824 bench/proxy.sh
#   BASE_REV=fb047fb bench/proxy.sh   # also runs meshentry built from that commit, in the same run
#   THREADS=1 bench/proxy.sh          # both proxies on one thread: HAProxy nbthread, meshentry
#                                     # --concurrency (GOMAXPROCS, so a BASE_REV build follows too)
#
# The main meshentry row runs with the access log off and no Istio metrics; a second instance with
# both on (the access log to a file, the metrics recorded and scraped once at the end) runs in the
# same run, so their cost is read off two adjacent rows.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNS=${CONNS:-16}
BYTES=${BYTES:-1073741824}
REPEAT=${REPEAT:-3}
OUT=${OUT:-bench/out}
mkdir -p "$OUT"

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v haproxy >/dev/null || need+=(haproxy)
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

BACKEND=127.0.0.1:18080   # HTTP backend
SOURCE=127.0.0.1:18090    # TCP source of $BYTES per connection
HAPROXY_HTTP=127.0.0.1:18081
HAPROXY_TCP=127.0.0.1:18091
GOPIPE=127.0.0.1:18092     # plain Go io.Copy relay, the floor for any Go passthrough
MESH=127.0.0.1:18001
MESH_ADMIN=127.0.0.1:18000
MESH_BASE=127.0.0.1:18003
MESH_BASE_ADMIN=127.0.0.1:18002
MESH_OBS=127.0.0.1:18005
MESH_OBS_ADMIN=127.0.0.1:18004

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$OUT/benchtool" http "$BACKEND" & pids+=($!)
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
${THREADS:+env GOMAXPROCS=$THREADS} "$OUT/meshentry" run -f "$OUT/bench.yaml" --listen "$MESH" --admin "$MESH_ADMIN" --log-level warn \
  --access-log off --istio-metrics=false >"$OUT/meshentry.log" 2>&1 & pids+=($!)
MESH_PID=$!
rm -f "$OUT/access.log"
${THREADS:+env GOMAXPROCS=$THREADS} "$OUT/meshentry" run -f "$OUT/bench.yaml" --listen "$MESH_OBS" --admin "$MESH_OBS_ADMIN" --log-level warn \
  --access-log "$OUT/access.log" --istio-metrics=true >"$OUT/meshentry-obs.log" 2>&1 & pids+=($!)
MESH_OBS_PID=$!
MESH_BASE_PID=
if [ -n "${BASE_REV:-}" ]; then
  ${THREADS:+env GOMAXPROCS=$THREADS} "$OUT/meshentry-base" run -f "$OUT/bench.yaml" --listen "$MESH_BASE" --admin "$MESH_BASE_ADMIN" --log-level warn >"$OUT/meshentry-base.log" 2>&1 & pids+=($!)
  MESH_BASE_PID=$!
fi

ready=
for _ in $(seq 100); do
  if curl -fsS -o /dev/null "http://$MESH_ADMIN/ready" 2>/dev/null && curl -fsS -o /dev/null "http://$MESH_OBS_ADMIN/ready" 2>/dev/null && curl -fsS -o /dev/null "http://$HAPROXY_HTTP/" 2>/dev/null &&
    { [ -z "$MESH_BASE_PID" ] || curl -fsS -o /dev/null "http://$MESH_BASE_ADMIN/ready" 2>/dev/null; }; then
    ready=1; break
  fi
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "meshentry or HAProxy did not come up; see $OUT/meshentry.log and $OUT/haproxy.log" >&2
  exit 1
fi

# cpu_ticks PID: user+system clock ticks the process has used.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)

# run_wrk NAME URL PID [HOST]: prints "rps p50_us p99_us cpu_us_per_req" (cpu "-" without a PID).
run_wrk() {
  local name=$1 url=$2 pid=$3 host=${4:-} hdr=()
  [ -n "$host" ] && hdr=(-H "Host: $host")
  wrk -t1 -c"$CONNS" -d1s "${hdr[@]}" "$url" >/dev/null   # warm up pools
  local c0=0; [ "$pid" != - ] && c0=$(cpu_ticks "$pid")
  wrk -t1 -c"$CONNS" -d"$DURATION" --latency "${hdr[@]}" "$url" >"$OUT/wrk-$name.txt"
  local c1=0; [ "$pid" != - ] && c1=$(cpu_ticks "$pid")
  awk -v c0="$c0" -v c1="$c1" -v tck="$TCK" -v pid="$pid" '
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
      printf "%.0f %.0f %.0f %s\n", rps, p50, p99, cpu
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

echo "HTTP/1.1 keep-alive, wrk -t1 -c$CONNS -d$DURATION, 128-byte responses" >&2
read -r d_rps d_p50 d_p99 _ < <(run_wrk direct "http://$BACKEND/" -)
read -r h_rps h_p50 h_p99 h_cpu < <(run_wrk haproxy "http://$HAPROXY_HTTP/" "$HAPROXY_PID")
read -r m_rps m_p50 m_p99 m_cpu < <(run_wrk meshentry "http://$MESH/" "$MESH_PID" bench.local)
read -r o_rps o_p50 o_p99 o_cpu < <(run_wrk meshentry-obs "http://$MESH_OBS/" "$MESH_OBS_PID" bench.local)
if [ -n "$MESH_BASE_PID" ]; then
  read -r b_rps b_p50 b_p99 b_cpu < <(run_wrk meshentry-base "http://$MESH_BASE/" "$MESH_BASE_PID" bench.local)
fi

echo "Streams of $BYTES bytes, median of $REPEAT" >&2
d_tp=$(median_stream "$OUT/benchtool" fetch "$SOURCE" "$BYTES")
h_tp=$(median_stream "$OUT/benchtool" fetch "$HAPROXY_TCP" "$BYTES")
g_tp=$(median_stream "$OUT/benchtool" fetch "$GOPIPE" "$BYTES")
m_tp=$(median_stream "$OUT/benchtool" fetch "$MESH" "$BYTES" --connect stream.local:443)
if [ -n "$MESH_BASE_PID" ]; then
  b_tp=$(median_stream "$OUT/benchtool" fetch "$MESH_BASE" "$BYTES" --connect stream.local:443)
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
{
  echo
  printf "%-34s %12s %10s %10s %12s %10s %10s\n" "HTTP keep-alive" "req/s" "p50 µs" "p99 µs" "CPU µs/req" "×direct" "×haproxy"
  printf "%-34s %12s %10s %10s %12s %10s %10s\n" "direct" "$d_rps" "$d_p50" "$d_p99" "-" "1.00" "$(ratio "$d_rps" "$h_rps")"
  printf "%-34s %12s %10s %10s %12s %10s %10s\n" "haproxy" "$h_rps" "$h_p50" "$h_p99" "$h_cpu" "$(ratio "$h_rps" "$d_rps")" "1.00"
  printf "%-34s %12s %10s %10s %12s %10s %10s\n" "meshentry (forward proxy)" "$m_rps" "$m_p50" "$m_p99" "$m_cpu" "$(ratio "$m_rps" "$d_rps")" "$(ratio "$m_rps" "$h_rps")"
 printf "%-34s %12s %10s %10s %12s %10s %10s\n" "meshentry, access log + metrics" "$o_rps" "$o_p50" "$o_p99" "$o_cpu" "$(ratio "$o_rps" "$d_rps")" "$(ratio "$o_rps" "$h_rps")"
  [ -n "$MESH_BASE_PID" ] && printf "%-34s %12s %10s %10s %12s %10s %10s\n" "meshentry at $BASE_REV" "$b_rps" "$b_p50" "$b_p99" "$b_cpu" "$(ratio "$b_rps" "$d_rps")" "$(ratio "$b_rps" "$h_rps")"
  echo
  printf "%-34s %12s %10s %10s\n" "1 GiB stream (passthrough)" "MiB/s" "×direct" "×haproxy"
  printf "%-34s %12s %10s %10s\n" "direct" "$d_tp" "1.00" "$(ratio "$d_tp" "$h_tp")"
  printf "%-34s %12s %10s %10s\n" "haproxy (mode tcp)" "$h_tp" "$(ratio "$h_tp" "$d_tp")" "1.00"
  printf "%-34s %12s %10s %10s\n" "plain Go io.Copy relay" "$g_tp" "$(ratio "$g_tp" "$d_tp")" "$(ratio "$g_tp" "$h_tp")"
  printf "%-34s %12s %10s %10s\n" "meshentry (CONNECT tunnel)" "$m_tp" "$(ratio "$m_tp" "$d_tp")" "$(ratio "$m_tp" "$h_tp")"
  [ -n "$MESH_BASE_PID" ] && printf "%-34s %12s %10s %10s\n" "meshentry at $BASE_REV (CONNECT)" "$b_tp" "$(ratio "$b_tp" "$d_tp")" "$(ratio "$b_tp" "$h_tp")"
  echo
  echo "p99 meshentry/haproxy: $(ratio "$m_p99" "$h_p99")   CPU per request meshentry/haproxy: $(ratio "$m_cpu" "$h_cpu")"
  echo "access log + metrics on/off: req/s $(ratio "$o_rps" "$m_rps"), CPU per request $(ratio "$o_cpu" "$m_cpu");" \
    "$(wc -l <"$OUT/access.log") access-log lines," \
    "istio_requests_total $(curl -fsS "http://$MESH_OBS_ADMIN/stats/prometheus" | awk '/^istio_requests_total/ { n += $NF } END { print n + 0 }')"
} | tee "$OUT/result.txt"
