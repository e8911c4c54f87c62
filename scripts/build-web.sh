#!/usr/bin/env bash
# Builds the web page (web/) into target/web/: index.html beside its assets
# and segpack.wasm, the segpack CLI for wasm32-wasip1 exactly as the npm
# package ships it (scripts/build-npm.sh --no-pack, which reuses the WASI
# build that scripts/cross.sh has already made, if any). The page runs it in
# a worker through web/wasi.js: the same code as the native CLI, no second
# implementation. Prints the directory on stdout (the last line), the
# transfer size (every file gzipped, as a static server or GitHub Pages
# sends it) on stderr.
#
#   scripts/build-web.sh
#   python3 -m http.server -d target/web     # then open http://localhost:8000
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/web

scripts/build-npm.sh --no-pack >&2
rm -rf "$out" && mkdir -p "$out"
cp web/index.html web/style.css web/app.js web/worker.js web/wasi.js web/sw.js npm/segpack.wasm "$out/"

# The service worker's cache is named after the files it keeps, so a new
# build replaces an old one instead of mixing with it.
stamp=$(cat "$out"/*.html "$out"/*.css "$out"/*.js "$out"/segpack.wasm | sha256sum | cut -c1-12)
sed -i "s/segpack-web-v1/segpack-web-$stamp/" "$out/sw.js"

raw=0 gz=0
for f in "$out"/*; do
  raw=$((raw + $(stat -c %s "$f")))
  gz=$((gz + $(gzip -9 -c "$f" | wc -c)))
done
echo "target/web: $((raw / 1024)) KiB, $((gz / 1024)) KiB gzipped (the transfer size)" >&2
echo "$PWD/$out"
