#!/bin/sh
# The issue's xDS scale check: 10,000 ServiceEntries pushed to 100 Delta ADS clients (first full
# push p50/p99, incremental push after one ServiceEntry changes p50/p99, RSS). Targets: full push
# to 100 clients <= 5 s, incremental p99 <= 100 ms, RSS <= 1 GiB. Server and clients share one
# process, so the RSS is an upper bound for the server alone.
set -eu
cd "$(dirname "$0")/.."
MESHENTRY_XDS_SES="${MESHENTRY_XDS_SES:-10000}" exec go test -run XXX -bench BenchmarkScale -benchtime="${BENCHTIME:-10x}" -timeout 30m ./internal/xds/server/
