#!/usr/bin/env bash
# Write a memory64 naive snapshot whose image is larger than 4 GiB.
#
#   benches/memory64_snapshot.sh OUT.wasm [IMAGE_MIB]
#
# IMAGE_MIB defaults to 6144 (a 6 GiB image, a ~1.9 GB file; ~25 s and
# ~30 MB of RSS). The heap is ../shared/bench/gen_snapshot.py's (seed 1,
# one segment per used 64 KiB page), laid into a minimal base module whose
# memory 0 is 64-bit: the generator keeps the base's memory type, so every
# segment offset is an i64.const, and offsets run past 4 GiB. The same
# arguments give the same bytes. SHARED=DIR points at the shared folder
# (default: ../shared beside the repository).
set -euo pipefail
out=${1:?usage: benches/memory64_snapshot.sh OUT.wasm [IMAGE_MIB]}
mib=${2:-6144}
here=$(cd "$(dirname "$0")" && pwd)
shared=${SHARED:-$here/../../shared}
gen=$shared/bench/gen_snapshot.py
[ -f "$gen" ] || { echo "memory64_snapshot: $gen not found (set SHARED=DIR)" >&2; exit 1; }

base=$(mktemp --suffix=.wasm)
trap 'rm -f "$base"' EXIT
# (module (memory (export "memory") i64 0)
#         (func (export "wizer.initialize")) (export "wizer-initialize" (func 0)))
python3 - "$base" <<'PY'
import sys
def uleb(v):
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)
def section(sid, body):
    return bytes([sid]) + uleb(len(body)) + body
def vec(items):
    return uleb(len(items)) + b"".join(items)
def name(s):
    return uleb(len(s)) + s.encode()
module = (b"\0asm\x01\0\0\0"
          + section(1, vec([b"\x60\x00\x00"]))
          + section(3, vec([b"\x00"]))
          + section(5, vec([b"\x04\x00"]))          # memory 0: i64, min 0 pages
          + section(7, vec([name("memory") + b"\x02\x00",
                            name("wizer.initialize") + b"\x00\x00",
                            name("wizer-initialize") + b"\x00\x00"]))
          + section(10, vec([b"\x02\x00\x0b"])))
open(sys.argv[1], "wb").write(module)
PY
python3 "$gen" --base "$base" --image-mib "$mib" --seed 1 -o "$out"
if command -v wasm-tools >/dev/null 2>&1; then
  wasm-tools validate --features all "$out"
fi
echo "$out: $(wc -c <"$out") bytes"
