#!/usr/bin/env bash
# sha256 and size of segpack's output for every corpus file, the sample and
# any extra snapshots, at four caps: run before and after a change that must
# keep the bytes (or only make outputs smaller), and diff the two listings.
#
#   scripts/output-hashes.sh SEGPACK [SNAPSHOT.wasm ...] > hashes.txt
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:?usage: output-hashes.sh SEGPACK [SNAPSHOT.wasm ...]}
shift
corpus=${SEGPACK_CORPUS:-$HERE/../shared/corpus}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in "$corpus"/*.wasm "$HERE"/samples/*.wasm "$@"; do
  for cap in 10000 100000 1000 50; do
    for t in 1 2; do
      if "$bin" pack --quiet --threads "$t" --max-segments "$cap" "$f" -o "$tmp/out.wasm" 2>/dev/null; then
        echo "$(sha256sum < "$tmp/out.wasm" | cut -c1-16) $(basename "$f") cap=$cap threads=$t bytes=$(stat -c %s "$tmp/out.wasm")"
      else
        echo "error($?) $(basename "$f") cap=$cap threads=$t"
      fi
    done
  done
done
