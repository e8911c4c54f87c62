#!/usr/bin/env bash
# Issue 25's instantiation benchmark: V8 (Node) and Wasmtime (Python
# `wasmtime`, ../shared/peers), each file as it is ("input"), packed by
# `segpack pack` ("default") and by `segpack pack --optimize-for CODEC`.
#
#   PYTHON=/path/to/peers/venv/bin/python scripts/instantiate.sh SEGPACK FILE.wasm ...
#
# Node: scripts/instantiate.mjs, compile once, then RUNS instantiations in
# that one process (median). Wasmtime: scripts/instantiate.py, the same.
# A component is not instantiated whole (its imports are WASI's): its core
# module with the largest data section is taken out of each of the three
# files (the same module in each: packing keeps the order) and timed.
# OPTIMIZE lists the codecs (default: gzip zstd); RUNS the instantiations.
# Prints markdown rows, and `uptime` before and after.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
bin=${1:?usage: instantiate.sh SEGPACK FILE.wasm ...}
shift
py=${PYTHON:-python3}
runs=${RUNS:-15}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The core module with the largest data section of a component (a core
# module is copied as it is).
core() {
  python3 - "$1" "$2" <<'PY'
import sys
src, dst = sys.argv[1:]
b = open(src, "rb").read()
def leb(b, i):
    v = s = 0
    while True:
        x = b[i]; i += 1; v |= (x & 0x7f) << s; s += 7
        if x < 0x80: return v, i
def sections(b, i, end):
    while i < end:
        sid = b[i]; n, j = leb(b, i + 1); yield sid, j, j + n; i = j + n
if b[6] != 1:  # a core module
    open(dst, "wb").write(b); sys.exit()
best = None
for sid, s, e in sections(b, 8, len(b)):
    if sid == 1:
        data = sum(e2 - s2 for sid2, s2, e2 in sections(b, s + 8, e) if sid2 == 11)
        if best is None or data > best[0]: best = (data, s, e)
open(dst, "wb").write(b[best[1]:best[2]])
PY
}
echo "load before: $(uptime)"
echo "| file | variant | bytes (core module) | V8 compile ms | V8 instantiate ms (median) | Wasmtime compile ms | Wasmtime instantiate ms (median) |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
for f in "$@"; do
  name=$(basename "$f")
  cp "$f" "$tmp/input.wasm"
  variants=(input default)
  "$bin" pack --quiet "$f" -o "$tmp/default.wasm"
  for c in ${OPTIMIZE:-gzip zstd}; do
    "$bin" pack --quiet --optimize-for "$c" "$f" -o "$tmp/$c.wasm"
    variants+=("$c")
  done
  for v in "${variants[@]}"; do
    core "$tmp/$v.wasm" "$tmp/core.wasm"
    node=$(node --expose-gc "$HERE/instantiate.mjs" "$tmp/core.wasm" "$runs")
    wt=$("$py" "$HERE/instantiate.py" "$tmp/core.wasm" "$runs")
    label=$v; [ "$v" = input ] || [ "$v" = default ] || label="--optimize-for $v"
    python3 - "$name" "$label" "$node" "$wt" <<'PY'
import json, sys
name, label, node, wt = sys.argv[1:]
n, w = json.loads(node), json.loads(wt)
print(f"| {name} | {label} | {n['bytes']:,} | {n['compile_ms']:.1f} | {n['instantiate_ms']['median']:.2f} "
      f"({n['instantiate_ms']['min']:.2f}-{n['instantiate_ms']['max']:.2f}) | {w['compile_ms']:.0f} | "
      f"{w['instantiate_ms']['median']:.3f} ({w['instantiate_ms']['min']:.3f}-{w['instantiate_ms']['max']:.3f}) |")
PY
  done
done
echo "load after: $(uptime)"
echo "node $(node --version), $("$py" -c 'import importlib.metadata as m; print("wasmtime", m.version("wasmtime"))')"
