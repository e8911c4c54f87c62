#!/usr/bin/env bash
# Builds the npm package `segpack` (npm/): the CLI for wasm32-wasip1 in release
# mode (the cross recipe: scripts/cross.sh wasi-cli, which strips it), copied
# to npm/segpack.wasm without any custom section left (DWARF, names,
# producers: none of them is read by the engine) and checked to compile, then
# `npm pack` into target/npm/. Prints the tarball's path on stdout (the last
# line), sizes on stderr.
#
#   scripts/build-npm.sh           build, copy, size stats, pack
#   scripts/build-npm.sh --no-pack build and copy only
#
# segpack.wasm is built, never committed (npm/.gitignore). No wasm-opt: the
# module is what rustc and rust-lld make, its data section packed by itself
# (300 KiB of its 1 MiB are zeros, which instantiation would write into its
# memory, resident: 200 KiB less peak memory on every run).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
pack=1
[ "${1:-}" = --no-pack ] && pack=0

command -v node >/dev/null || { echo "build-npm.sh: node (v20+) is needed" >&2; exit 1; }

# The versions must agree: the package is the CLI of this workspace.
cargo_version=$(cargo metadata --no-deps --format-version 1 |
  node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).packages.find(p=>p.name==="segpack-cli").version))')
npm_version=$(node -p 'require("./npm/package.json").version')
if [ "$cargo_version" != "$npm_version" ]; then
  echo "build-npm.sh: npm/package.json has version $npm_version, segpack-cli $cargo_version" >&2
  exit 1
fi

wasm=$(scripts/cross.sh wasi-cli | tail -n1)
[ -f "$wasm" ] || { echo "build-npm.sh: scripts/cross.sh wasi-cli gave no .wasm ($wasm)" >&2; exit 1; }

# Keep the sections the engine reads; drop custom ones (id 0) if any are left.
node - "$wasm" npm/segpack.wasm <<'JS'
const fs = require('node:fs');
const zlib = require('node:zlib');
const [from, to] = process.argv.slice(2);
const b = fs.readFileSync(from);
const leb = (at) => { let n = 0, shift = 0, byte; do { byte = b[at++]; n += (byte & 0x7f) * 2 ** shift; shift += 7; } while (byte & 0x80); return [n, at]; };
const parts = [b.subarray(0, 8)];
for (let at = 8; at < b.length; ) {
  const id = b[at];
  const [size, body] = leb(at + 1);
  if (id !== 0) parts.push(b.subarray(at, body + size));
  at = body + size;
}
const out = Buffer.concat(parts);
new WebAssembly.Module(out); // still valid
fs.writeFileSync(to, out);
const kib = (n) => `${(n / 1024).toFixed(0)} KiB`;
console.error(`segpack.wasm: ${kib(b.length)} built, ${kib(out.length)} shipped, ` +
  `${kib(zlib.gzipSync(out, { level: 9 }).length)} gzipped`);
JS
node npm/bin/segpack.js pack --stats npm/segpack.wasm -o npm/segpack.wasm

[ $pack = 1 ] || exit 0
mkdir -p target/npm
rm -f target/npm/segpack-*.tgz
tarball=$(cd npm && npm pack --silent --pack-destination "$ROOT/target/npm" | tail -n1)
echo "$(basename "$tarball"): $(($(stat -c %s "target/npm/$tarball") / 1024)) KiB" >&2
echo "$ROOT/target/npm/$tarball"
