#!/usr/bin/env bash
# Measures meshentry with 10,000 ServiceEntries created through a real kube-apiserver (etcd from
# Debian's etcd-server, kube-apiserver from tools/kube) against the same 10,000 from a file, in one
# run: last create to a snapshot holding all, startup list, and RSS.
#
#   bench/kube10k.sh            # N=10000 WORKERS=16
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out}
mkdir -p "$OUT"
command -v etcd >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null; }
MESHENTRY_KUBE_APISERVER=$(tools/kube/build.sh)
export MESHENTRY_KUBE_APISERVER
go build -o "$OUT/meshentry" ./cmd/meshentry
go run ./bench/kube10k -meshentry "$OUT/meshentry" -n "${N:-10000}" -workers "${WORKERS:-16}"
