#!/usr/bin/env bash
# Issue 25's table: raw, gzip, brotli and zstd sizes of each input, its
# default pack and its pack --optimize-for that codec, with the time each
# takes. Sizes are segpack's own codecs (flate2/miniz_oxide, brotli crate,
# libzstd), the ones --optimize-for weighs with; "1x" is one compression of
# the input at that level by the reference tool (gzip -9, zstd -19 with the
# size known, Python's brotli at quality 11; the level given, as in
# `zstd:3`, when there is one), the unit of the budget.
#
#   scripts/compressed.sh SEGPACK [CODEC...] -- FILE.wasm ...
#
# Prints markdown rows on stdout: file, codec, input / default / optimized
# (compressed bytes, change from the input), raw bytes of the optimized
# output, the chosen cap, seconds for pack --optimize-for, 1x, and the cost
# counted by segpack: the bytes it handed to the codec, in input lengths.
set -euo pipefail
bin=${1:?usage: compressed.sh SEGPACK [CODEC...] -- FILE.wasm ...}
shift
codecs=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do codecs+=("$1"); shift; done
[ $# -gt 0 ] && shift
[ ${#codecs[@]} -gt 0 ] || codecs=(gzip brotli zstd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pct() { python3 -c "import sys; b,a=int(sys.argv[1]),int(sys.argv[2]); print(f'{(a-b)/b*100:+.1f}%')" "$1" "$2"; }
secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N); python3 -c "print(f'{$t1-$t0:.1f}')"; }
echo "| file | codec | input | default pack | --optimize-for | raw out | cap | time | 1x | cost |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for f in "$@"; do
  "$bin" pack --quiet "$f" -o "$tmp/default.wasm"
  for c in "${codecs[@]}"; do
    t0=$(date +%s.%N)
    "$bin" pack --quiet --json --optimize-for "$c" "$f" -o "$tmp/opt.wasm" 2> "$tmp/opt.json"
    t1=$(date +%s.%N)
    level=${c#*:}
    [ "$level" = "$c" ] && level=
    case $c in
      gzip*) one=$(secs gzip "-${level:-9}" -c "$f") ;;
      zstd*) one=$(secs zstd "-${level:-19}" -c "$f") ;;
      brotli*) one=$(secs "${PYTHON:-python3}" -c "import brotli,sys; brotli.compress(open(sys.argv[1],'rb').read(), quality=int(sys.argv[2]))" "$f" "${level:-11}") ;;
    esac
    "$bin" inspect --json --compressed "$c" "$f" > "$tmp/inspect.json"
    python3 - "$f" "$c" "$tmp/opt.json" "$tmp/inspect.json" "$t0" "$t1" "$one" "$(stat -c %s "$tmp/opt.wasm")" <<'PY'
import json, os, sys
f, c, opt, ins, t0, t1, one, raw = sys.argv[1:]
o = json.loads(open(opt).read().strip().splitlines()[-1])["compressed"]
cost = o["bytes_compressed"] / os.path.getsize(f)
i = json.load(open(ins))["compressed"]
pct = lambda b, a: f"{(a - b) / b * 100:+.1f}%"
chosen = "input" if o["bytes_after"] == o["bytes_before"] else str(json.loads(open(opt).read().strip().splitlines()[-1])["segments_after"]) + " segs"
print(f"| {os.path.basename(f)} | {c} | {i['bytes_input']:,} | {i['default']['compressed_bytes']:,} ({pct(i['bytes_input'], i['default']['compressed_bytes'])}) | "
      f"{o['bytes_after']:,} ({pct(o['bytes_before'], o['bytes_after'])}) | {int(raw):,} | {chosen} | {float(t1) - float(t0):.1f} s | {one} s | {cost:.2f}x |")
PY
  done
done
