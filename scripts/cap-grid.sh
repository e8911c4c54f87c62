#!/usr/bin/env bash
# Issue 25's "beat the best single cap": each file packed at a grid of caps a
# user could pick by hand, and with --optimize-for each codec, every output
# compressed by the reference tools (gzip -9, zstd -19, Python brotli at
# quality 11), so both sides are measured alike.
#
#   PYTHON=/path/to/python-with-brotli scripts/cap-grid.sh SEGPACK FILE.wasm ...
#
# Prints markdown rows on stdout: file, codec, input, the best grid cap and
# its size, --optimize-for's size, and optimized against the best cap.
# CAPS overrides the grid (default: 1 3 10 30 100 300 1000 3000 10000).
set -euo pipefail
bin=${1:?usage: cap-grid.sh SEGPACK FILE.wasm ...}
shift
py=${PYTHON:-python3}
caps=${CAPS:-1 3 10 30 100 300 1000 3000 10000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
size() { # codec file -> compressed bytes
  case $1 in
    gzip) gzip -9c "$2" | wc -c ;;
    zstd) zstd -19 -q -c "$2" | wc -c ;;
    brotli) "$py" -c "import brotli,sys; print(len(brotli.compress(open(sys.argv[1],'rb').read(), quality=11)))" "$2" ;;
  esac
}
echo "| file | codec | input | best grid cap | its size | --optimize-for | vs best cap | grid |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"
for f in "$@"; do
  for cap in $caps; do
    "$bin" pack --quiet --max-segments "$cap" "$f" -o "$tmp/cap-$cap.wasm"
  done
  for c in ${CODECS:-gzip zstd brotli}; do
    input=$(size "$c" "$f")
    best= bestcap= grid=
    for cap in $caps; do
      s=$(size "$c" "$tmp/cap-$cap.wasm")
      grid="$grid $cap:$s"
      if [ -z "$best" ] || [ "$s" -lt "$best" ]; then best=$s bestcap=$cap; fi
    done
    "$bin" pack --quiet --optimize-for "$c" "$f" -o "$tmp/opt.wasm"
    opt=$(size "$c" "$tmp/opt.wasm")
    python3 - "$f" "$c" "$input" "$bestcap" "$best" "$opt" "$grid" <<'PY'
import os, sys
f, c, i, cap, best, opt, grid = sys.argv[1:]
i, best, opt = int(i), int(best), int(opt)
pct = lambda b, a: f"{(a - b) / b * 100:+.2f}%"
print(f"| {os.path.basename(f)} | {c} | {i:,} | {cap} | {best:,} ({pct(i, best)}) | {opt:,} ({pct(i, opt)}) | {opt - best:+,} B ({pct(best, opt)}) | {grid.strip()} |")
PY
  done
done
