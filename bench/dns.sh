#!/usr/bin/env bash
# Measures meshentry's DNS proxy (run --dns-listen) against dnsmasq answering the same names, in
# one run, on 127.0.0.1: queries/s (dnsperf, 100 queries outstanding) and p50/p99 latency
# (bench/dnsload, closed loop, $WORKERS queries in flight) for
#   registry names:  $HOSTS address-less TCP ServiceEntry hosts, answered with their allocated
#                    addresses by meshentry, and by dnsmasq from address= lines of the same addresses;
#   forwarded names: $HOSTS names of an upstream dnsmasq, which both forward through their caches
#                    (warmed first, so this is the cached forward path).
# Installs dnsmasq-base and dnsperf from the distribution when missing.
#
#   bench/dns.sh
#   DURATION=5 REPEAT=3 HOSTS=1000 WORKERS=8 bench/dns.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5}    # seconds per figure
REPEAT=${REPEAT:-3}
HOSTS=${HOSTS:-1000}
WORKERS=${WORKERS:-8}
OUT=${OUT:-bench/out/dns}
mkdir -p "$OUT"

need=()
command -v dnsmasq >/dev/null || need+=(dnsmasq-base)
command -v dnsperf >/dev/null || need+=(dnsperf)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

go build -o "$OUT/meshentry" ./cmd/meshentry
go build -o "$OUT/dnsload" ./bench/dnsload

UPSTREAM=18530      # dnsmasq holding the forwarded names
MESH_DNS=18531
MESH_ADMIN=127.0.0.1:18532
DNSMASQ=18533       # dnsmasq compared with meshentry

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

: >"$OUT/config.yaml"; : >"$OUT/upstream.conf"; : >"$OUT/reg.txt"; : >"$OUT/fwd.txt"
for i in $(seq 1 "$HOSTS"); do
  cat >>"$OUT/config.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: h$i}
spec:
  hosts: [h$i.bench.test]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
---
YAML
  echo "address=/f$i.fwd.test/192.0.2.$((i % 250 + 1))" >>"$OUT/upstream.conf"
  echo "h$i.bench.test A" >>"$OUT/reg.txt"
  echo "f$i.fwd.test A" >>"$OUT/fwd.txt"
done

common=(--keep-in-foreground --no-resolv --no-hosts --no-poll --bind-interfaces --listen-address=127.0.0.1
        --pid-file= --user=root --log-facility=/dev/null)
# --local-ttl: dnsmasq answers address= names with TTL 0 otherwise, which no cache keeps.
dnsmasq "${common[@]}" --port=$UPSTREAM --local-ttl=300 --conf-file="$OUT/upstream.conf" & pids+=($!)

"$OUT/meshentry" run -f "$OUT/config.yaml" --listen '' --admin "$MESH_ADMIN" --log-level warn \
  --dns-listen 127.0.0.1:$MESH_DNS --dns-server 127.0.0.1:$UPSTREAM >"$OUT/meshentry.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do curl -sf "http://$MESH_ADMIN/ready" >/dev/null && break; sleep 0.1; done

# dnsmasq gets the very addresses meshentry allocated.
curl -sf "http://$MESH_ADMIN/dns" | python3 -c '
import json, sys
for a in json.load(sys.stdin)["allocations"]:
    print("address=/%s/%s" % (a["host"], a["v4"]))' >"$OUT/dnsmasq.conf"
echo "server=127.0.0.1#$UPSTREAM" >>"$OUT/dnsmasq.conf"
echo "cache-size=9984" >>"$OUT/dnsmasq.conf"
dnsmasq "${common[@]}" --port=$DNSMASQ --conf-file="$OUT/dnsmasq.conf" & pids+=($!)
sleep 0.5

# Warm both caches with every forwarded name.
"$OUT/dnsload" -s 127.0.0.1:$MESH_DNS -d "$OUT/fwd.txt" -c 1 -l 1s >/dev/null
"$OUT/dnsload" -s 127.0.0.1:$DNSMASQ -d "$OUT/fwd.txt" -c 1 -l 1s >/dev/null

qps() { dnsperf -s 127.0.0.1 -p "$1" -d "$2" -l "$DURATION" -c 4 -q 100 2>&1 | awk '/Queries per second/ {printf "%.0f", $4}'; }
median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

# The machine may be shared: meshentry and dnsmasq rows alternate, $REPEAT rounds, and the
# median of each row is reported beside every round's figure.
rows=("meshentry registry:$MESH_DNS:reg" "dnsmasq registry:$DNSMASQ:reg" "meshentry forwarded:$MESH_DNS:fwd" "dnsmasq forwarded:$DNSMASQ:fwd")
declare -A got
echo "# DNS proxy benchmark: $HOSTS names per set, ${DURATION}s per figure, $REPEAT rounds, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# dnsperf, 4 sockets, 100 queries outstanding:"
for _ in $(seq "$REPEAT"); do
  for row in "${rows[@]}"; do
    IFS=: read -r name port set <<<"$row"
    got[$name]+="$(qps "$port" "$OUT/$set.txt") "
  done
done
printf '%-22s %10s   %s\n' "server / names" "median q/s" "rounds"
for row in "${rows[@]}"; do
  name=${row%%:*}
  printf '%-22s %10s   %s\n' "$name" "$(echo "${got[$name]}" | median)" "${got[$name]}"
done
m=$(echo "${got[meshentry registry]}" | median); d=$(echo "${got[dnsmasq registry]}" | median)
echo "registry names: meshentry/dnsmasq = $(awk -v m="$m" -v d="$d" 'BEGIN {printf "%.2f", m/d}')x"
echo "# closed loop, $WORKERS in flight (bench/dnsload), round by round:"
for _ in $(seq "$REPEAT"); do
  for row in "${rows[@]}"; do
    IFS=: read -r name port set <<<"$row"
    "$OUT/dnsload" -label "$name" -s 127.0.0.1:"$port" -d "$OUT/$set.txt" -c "$WORKERS" -l "${DURATION}s"
  done
done
