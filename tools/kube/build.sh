#!/usr/bin/env bash
# Builds kube-apiserver from this module (tool dependency k8s.io/kubernetes) into a cache folder
# keyed by version, outside the clone so that `git clean` keeps it, and prints its path. About
# 11 minutes cold on 2 cores; nothing when the binary is there.
set -euo pipefail
cd "$(dirname "$0")"
version=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }' go.mod)
dir="${XDG_CACHE_HOME:-$HOME/.cache}/meshentry/kube/$version"
bin="$dir/kube-apiserver"
if [ ! -x "$bin" ]; then
  mkdir -p "$dir"
  echo "building kube-apiserver $version into $dir (about 11 minutes cold)" >&2
  go build -trimpath -ldflags='-s -w' -o "$bin.tmp.$$" k8s.io/kubernetes/cmd/kube-apiserver
  mv "$bin.tmp.$$" "$bin"
fi
echo "$bin"
