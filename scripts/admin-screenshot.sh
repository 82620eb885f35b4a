#!/usr/bin/env bash
# admin-screenshot.sh: render meshentry's admin page in a real headless browser.
#
# Installs Debian's chromium when it is missing, starts `meshentry run -f examples/quickstart.yaml`
# with its forward proxy and admin API on free loopback ports (and a python3 web server as the
# example's endpoint on 127.0.0.1:8080, unless something listens there already), sends a little
# traffic through the proxy so the counters move, screenshots http://ADMIN/ and stops everything.
#
# usage: scripts/admin-screenshot.sh [OUT.png]     (default: admin-shot.png)
set -euo pipefail

out=${1:-admin-shot.png}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

if ! command -v chromium >/dev/null; then
	echo "admin-screenshot: installing Debian's chromium" >&2
	sudo=""
	if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
	$sudo apt-get update -q
	DEBIAN_FRONTEND=noninteractive $sudo apt-get -y -q install chromium
fi

(cd "$root" && go build -o "$work/meshentry" ./cmd/meshentry)

# The quickstart's one endpoint is 127.0.0.1:8080.
if ! (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then
	python3 -m http.server 8080 --bind 127.0.0.1 --directory "$work" >"$work/backend.log" 2>&1 &
	pids+=($!)
fi

"$work/meshentry" run -f "$root/examples/quickstart.yaml" --listen 127.0.0.1:0 --admin 127.0.0.1:0 \
	>"$work/run.out" 2>"$work/run.log" &
pids+=($!)

# run prints "meshentry: NAME listening on ADDR" for each listener once it is bound.
addr_of() { sed -n "s/^meshentry: $1 listening on //p" "$work/run.out"; }
for _ in $(seq 100); do
	if [ -n "$(addr_of admin)" ] && [ -n "$(addr_of 'forward proxy')" ]; then break; fi
	sleep 0.1
done
admin=$(addr_of admin)
forward=$(addr_of 'forward proxy')
if [ -z "$admin" ] || [ -z "$forward" ]; then
	echo "admin-screenshot: meshentry did not start:" >&2
	cat "$work/run.log" >&2
	exit 1
fi
# The backend may take a moment to listen.
for _ in $(seq 50); do
	if (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then break; fi
	sleep 0.1
done

for _ in 1 2 3 4 5; do
	curl -s -o /dev/null -w "api.example.com: %{http_code}\n" -x "http://$forward" http://api.example.com/ || true
done
curl -s -o /dev/null -w "other.example.com (refused): %{http_code}\n" -x "http://$forward" http://other.example.com/ || true

chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --screenshot="$work/shot.png" \
	--window-size=1280,1600 "http://$admin/" 2>"$work/chromium.log" || {
	echo "admin-screenshot: chromium failed:" >&2
	cat "$work/chromium.log" >&2
	exit 1
}
mv "$work/shot.png" "$out"
echo "admin-screenshot: wrote $out (admin page of http://$admin/)"
