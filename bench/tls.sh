#!/usr/bin/env bash
# Measures TLS origination, meshentry against HAProxy, in one run on 127.0.0.1: the client sends
# plain HTTP/1.1 and each proxy opens verified TLS (ECDSA P-256, its CA given as the trust anchor,
# SNI set) to an HTTPS backend.
#   (a) keep-alive: wrk -t1 -c$CONNS, req/s, p50/p99 and proxy CPU µs per request, upstream TLS
#       connections pooled by both proxies;
#   (b) new handshakes: the backend closes after every response (option httpclose) and wrk sends
#       Connection: close, so each request costs each proxy a new upstream TLS handshake; the
#       handshakes per second are counted at the backend (its frontend's cumulative connections).
# Both proxies resume TLS sessions to the backend as they do by default (HAProxy's ssl-reuse,
# meshentry's per-route session cache), and both offer X25519 (OpenSSL 3.0's default; meshentry's
# client sets CurvePreferences to X25519 for parity).
#
#   bench/tls.sh                 # 10 s per run
#   DURATION=5s CONNS=16 bench/tls.sh
#   THREADS=1 bench/tls.sh       # both proxies under test on one thread: HAProxy nbthread,
#                                # meshentry --concurrency (GOMAXPROCS)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNS=${CONNS:-16}
OUT=${OUT:-bench/out/tls}
mkdir -p "$OUT"

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v haproxy >/dev/null || need+=(haproxy)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

go build -o "$OUT/meshentry" ./cmd/meshentry
go build -o "$OUT/benchtool" ./bench/benchtool

BACKEND=127.0.0.1:19080     # plain HTTP backend behind the TLS terminator
BE_KA=127.0.0.1:19443       # HTTPS, keep-alive
BE_CLOSE=127.0.0.1:19444    # HTTPS, closes after each response
BE_STATS=127.0.0.1:19445    # the terminator's stats, CSV
HA_KA=127.0.0.1:19081
HA_CLOSE=127.0.0.1:19082
HA_PLAIN=127.0.0.1:19083
MESH=127.0.0.1:19001
MESH_ADMIN=127.0.0.1:19000

# ECDSA P-256 CA and server certificate for tls.local and close.local, made fresh each run.
openssl ecparam -name prime256v1 -genkey -noout -out "$OUT/ca-key.pem" 2>/dev/null
openssl req -x509 -new -key "$OUT/ca-key.pem" -subj "/CN=bench CA" -days 2 -out "$OUT/ca.pem" 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$OUT/server-key.pem" 2>/dev/null
openssl req -new -key "$OUT/server-key.pem" -subj "/CN=tls.local" -out "$OUT/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:tls.local,DNS:close.local\nextendedKeyUsage=serverAuth\n' >"$OUT/san.ext"
openssl x509 -req -in "$OUT/server.csr" -CA "$OUT/ca.pem" -CAkey "$OUT/ca-key.pem" -CAcreateserial -days 2 \
  -extfile "$OUT/san.ext" -out "$OUT/server.pem" 2>/dev/null
cat "$OUT/server.pem" "$OUT/server-key.pem" >"$OUT/server-bundle.pem"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$OUT/benchtool" http "$BACKEND" & pids+=($!)

# The HTTPS backend: HAProxy terminating TLS in front of the plain backend, one thread, so that
# most of the two cores are left to the proxy under test.
cat >"$OUT/backend.cfg" <<CFG
global
  maxconn 8192
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend be_ka
  bind $BE_KA ssl crt $OUT/server-bundle.pem
  option http-keep-alive
  default_backend plain
frontend be_close
  bind $BE_CLOSE ssl crt $OUT/server-bundle.pem
  option httpclose
  default_backend plain
backend plain
  http-reuse always
  server b $BACKEND
listen stats
  bind $BE_STATS
  stats enable
  stats uri /stats
CFG
haproxy -f "$OUT/backend.cfg" -db >"$OUT/backend.log" 2>&1 & pids+=($!)

# HAProxy doing the origination under test.
cat >"$OUT/haproxy.cfg" <<CFG
global
  maxconn 8192
${THREADS:+  nbthread $THREADS}
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend ka_in
  bind $HA_KA
  option http-keep-alive
  default_backend ka_out
backend ka_out
  http-reuse always
  server s1 $BE_KA ssl verify required ca-file $OUT/ca.pem sni str(tls.local)
frontend close_in
  bind $HA_CLOSE
  default_backend close_out
backend close_out
  http-reuse always
  server s1 $BE_CLOSE ssl verify required ca-file $OUT/ca.pem sni str(close.local)
frontend plain_in
  bind $HA_PLAIN
  option http-keep-alive
  default_backend plain_out
backend plain_out
  http-reuse always
  server s1 $BACKEND
CFG
haproxy -f "$OUT/haproxy.cfg" -db >"$OUT/haproxy.log" 2>&1 & pids+=($!)
HAPROXY_PID=$!

# meshentry doing the same: Istio's egress TLS origination (plain HTTP to port 80, SIMPLE to the
# endpoint's TLS port).
entry() {
  cat <<CFG
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: $1}
spec:
  hosts: [$2]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: ${3##*:}}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: $1}
spec:
  host: $2
  trafficPolicy:
    tls: {mode: SIMPLE, caCertificates: $(pwd)/$OUT/ca.pem, sni: $2}
CFG
}
{
  entry bench-ka tls.local "$BE_KA"; entry bench-close close.local "$BE_CLOSE"
  # The same route without TLS, to the plain backend: the rows that show what TLS itself costs.
  cat <<CFG
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: bench-plain}
spec:
  hosts: [plain.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: ${BACKEND##*:}}}]
CFG
} >"$OUT/bench.yaml"
${THREADS:+env GOMAXPROCS=$THREADS} "$OUT/meshentry" run -f "$OUT/bench.yaml" --listen "$MESH" --admin "$MESH_ADMIN" --log-level warn \
  --access-log off --istio-metrics=false ${MESH_ARGS:-} >"$OUT/meshentry.log" 2>&1 & pids+=($!)
MESH_PID=$!

ready=
for _ in $(seq 100); do
  if curl -fsS -o /dev/null -x "http://$MESH" http://tls.local/ 2>/dev/null && curl -fsS -o /dev/null -x "http://$MESH" http://close.local/ 2>/dev/null &&
    curl -fsS -o /dev/null "http://$HA_KA/" 2>/dev/null && curl -fsS -o /dev/null "http://$HA_CLOSE/" 2>/dev/null; then
    ready=1; break
  fi
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "meshentry, HAProxy or the backend did not come up; see $OUT/*.log" >&2
  exit 1
fi

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)
# be_conns FRONTEND: cumulative connections the backend's frontend accepted (TLS handshakes).
be_conns() { curl -fsS "http://$BE_STATS/stats;csv" | awk -F, -v fe="$1" '$1 == fe && $2 == "FRONTEND" { print $8 }'; }
secs() { awk -v d="$DURATION" 'BEGIN { print d + 0 }'; }

# run_wrk NAME URL PID FRONTEND [wrk args...]: prints "rps p50_us p99_us cpu_us_per_req handshakes_per_s".
run_wrk() {
  local name=$1 url=$2 pid=$3 fe=$4
  shift 4
  wrk -t1 -c"$CONNS" -d1s "$@" "$url" >/dev/null   # warm up pools and session caches
  local c0 h0 c1 h1
  c0=$(cpu_ticks "$pid"); h0=$(be_conns "$fe")
  wrk -t1 -c"$CONNS" -d"$DURATION" --latency "$@" "$url" >"$OUT/wrk-$name.txt"
  c1=$(cpu_ticks "$pid"); h1=$(be_conns "$fe")
  awk -v c0="$c0" -v c1="$c1" -v tck="$TCK" -v h0="$h0" -v h1="$h1" -v secs="$(secs)" '
    function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return (v+0)*1000; if (v ~ /s$/) return (v+0)*1e6; return v }
    /^ +50%/ { p50 = us($2) } /^ +99%/ { p99 = us($2) }
    /requests in/ { reqs = $1 }
    /^Requests\/sec/ { rps = $2 }
    /Non-2xx/ { bad = $NF }
    END {
      if (bad > 0) { print "wrk saw non-2xx responses" > "/dev/stderr"; exit 1 }
      printf "%.0f %.0f %.0f %.1f %.0f\n", rps, p50, p99, (c1 - c0) / tck * 1e6 / reqs, (h1 - h0) / secs
    }' "$OUT/wrk-$name.txt"
}

echo "TLS origination, keep-alive, wrk -t1 -c$CONNS -d$DURATION" >&2
read -r h_rps h_p50 h_p99 h_cpu h_hs < <(run_wrk haproxy-ka "http://$HA_KA/" "$HAPROXY_PID" be_ka)
# meshentry's forward proxy routes an origin-form request by its Host, as proxy.sh drives it.
read -r m_rps m_p50 m_p99 m_cpu m_hs < <(run_wrk meshentry-ka "http://$MESH/" "$MESH_PID" be_ka -H "Host: tls.local")
echo "Plaintext upstream, keep-alive (reference)" >&2
read -r hp_rps hp_p50 hp_p99 hp_cpu _ < <(run_wrk haproxy-plain "http://$HA_PLAIN/" "$HAPROXY_PID" be_ka)
read -r mp_rps mp_p50 mp_p99 mp_cpu _ < <(run_wrk meshentry-plain "http://$MESH/" "$MESH_PID" be_ka -H "Host: plain.local")
echo "TLS origination, a new upstream handshake per request (backend closes, Connection: close)" >&2
read -r hc_rps hc_p50 hc_p99 hc_cpu hc_hs < <(run_wrk haproxy-close "http://$HA_CLOSE/" "$HAPROXY_PID" be_close -H "Connection: close")
read -r mc_rps mc_p50 mc_p99 mc_cpu mc_hs < <(run_wrk meshentry-close "http://$MESH/" "$MESH_PID" be_close -H "Host: close.local" -H "Connection: close")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
{
  echo
  echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
  printf "%-40s %10s %9s %9s %11s %13s\n" "TLS origination" "req/s" "p50 µs" "p99 µs" "CPU µs/req" "handshakes/s"
  printf "%-40s %10s %9s %9s %11s %13s\n" "haproxy, keep-alive" "$h_rps" "$h_p50" "$h_p99" "$h_cpu" "$h_hs"
  printf "%-40s %10s %9s %9s %11s %13s\n" "meshentry, keep-alive" "$m_rps" "$m_p50" "$m_p99" "$m_cpu" "$m_hs"
  printf "%-40s %10s %9s %9s %11s %13s\n" "haproxy, plaintext upstream (reference)" "$hp_rps" "$hp_p50" "$hp_p99" "$hp_cpu" "-"
  printf "%-40s %10s %9s %9s %11s %13s\n" "meshentry, plaintext upstream (reference)" "$mp_rps" "$mp_p50" "$mp_p99" "$mp_cpu" "-"
  printf "%-40s %10s %9s %9s %11s %13s\n" "haproxy, new handshake per request" "$hc_rps" "$hc_p50" "$hc_p99" "$hc_cpu" "$hc_hs"
  printf "%-40s %10s %9s %9s %11s %13s\n" "meshentry, new handshake per request" "$mc_rps" "$mc_p50" "$mc_p99" "$mc_cpu" "$mc_hs"
  echo
  echo "meshentry/haproxy keep-alive: req/s $(ratio "$m_rps" "$h_rps"), p99 $(ratio "$m_p99" "$h_p99"), CPU/req $(ratio "$m_cpu" "$h_cpu")"
  echo "meshentry/haproxy plaintext upstream: req/s $(ratio "$mp_rps" "$hp_rps"), CPU/req $(ratio "$mp_cpu" "$hp_cpu")"
  echo "meshentry/haproxy new handshakes: handshakes/s $(ratio "$mc_hs" "$hc_hs"), req/s $(ratio "$mc_rps" "$hc_rps"), CPU/req $(ratio "$mc_cpu" "$hc_cpu")"
} | tee "$OUT/result.txt"
