#!/usr/bin/env bash
# Tests the npm package as a user gets it: builds it (scripts/build-npm.sh:
# the WASI CLI, stripped, `npm pack`ed), installs the tarball into a fresh
# temporary directory, and runs npm/test/*.test.mjs with `node --test` against
# that install, comparing with the native CLI (built here, release).
#
#   scripts/test-npm.sh
#
# Environment: SEGPACK_CORPUS (default ../shared/corpus), SEGPACK_PYTHON (a
# Python with wasmtime for the end-to-end test; default target/e2e-venv, made
# by `cargo test`, else ../peers/venv). The snapshot: a 16 MiB image made by
# ../shared/bench/gen_snapshot.py (samples/snapshot.wasm if that is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SHARED=${SEGPACK_SHARED:-$ROOT/../shared}
t0=$SECONDS

tarball=$(scripts/build-npm.sh | tail -n1)
cargo build --release -p segpack-cli

work=$(mktemp -d "${TMPDIR:-/tmp}/segpack-npm-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm init -y >/dev/null &&
  npm install --no-audit --no-fund --loglevel=error "$tarball" >/dev/null)
echo "installed $(basename "$tarball") into $work" >&2

snapshot=$ROOT/samples/snapshot.wasm
if [ -f "$SHARED/bench/gen_snapshot.py" ]; then
  snapshot=$ROOT/target/npm/snapshot-16m.wasm
  [ -f "$snapshot" ] ||
    python3 "$SHARED/bench/gen_snapshot.py" --no-base --image-mib 16 --seed 1 -o "$snapshot" >&2
fi

export SEGPACK_NPM_INSTALL=$work
export SEGPACK_NATIVE=$ROOT/target/release/segpack
export SEGPACK_CORPUS=${SEGPACK_CORPUS:-$SHARED/corpus}
export SEGPACK_SNAPSHOT=$snapshot
node --test npm/test/*.test.mjs
echo "npm package tests: $((SECONDS - t0)) s" >&2
