# Sourced by bench/scale.sh and bench/ready.sh: builds meshentry and scaletool into $OUT, and,
# when BASE_REV is set, meshentry from that commit as meshentry-base; sets out_abs and builds
# (the binaries to compare, base first).
mkdir -p "$OUT"
out_abs=$(cd "$OUT" && pwd)
go build -o "$OUT/meshentry" ./cmd/meshentry
go build -o "$OUT/scaletool" ./bench/scaletool
builds=(meshentry)
if [ -n "${BASE_REV:-}" ]; then
  base_src=$(mktemp -d)
  git archive "$BASE_REV" | tar -x -C "$base_src"
  (cd "$base_src" && go build -o "$out_abs/meshentry-base" ./cmd/meshentry)
  rm -rf "$base_src"
  builds=(meshentry-base meshentry)
fi
