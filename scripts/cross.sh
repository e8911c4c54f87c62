#!/usr/bin/env bash
# Builds, tests and checks segpack for targets whose std rustup can't give us
# here (only the host target is installed and rustup can't download more).
#
#   scripts/cross.sh            all steps below, timing each one
#   scripts/cross.sh install    only the Debian packages
#   scripts/cross.sh build      the library for wasm32-unknown-unknown and wasm32-wasip1
#   scripts/cross.sh test       the library's unit tests on wasm32-wasip1, in Node
#   scripts/cross.sh check      library and CLI: cargo check for Windows and macOS
#   scripts/cross.sh wasi-cli   the CLI for wasm32-wasip1, release; prints the .wasm path
#
# Package names come from LIB_PKG (segpack), CLI_PKG (segpack-cli) and
# CLI_BIN (segpack); CLI steps are skipped while the CLI package doesn't exist.
#
# The recipe, and why each piece is there:
# - rustc-web + rust-web-src (Debian): a rustc that comes with std's source, so
#   `-Zbuild-std` compiles std for any target; RUSTC_BOOTSTRAP=1 allows -Z on a
#   stable compiler. bookworm-security has 1.96; plain bookworm's 1.85 is older
#   than the workspace's rust-version (wasmparser 0.263 needs 1.88): checked.
# - cargo-web: Debian's cargo of that release. -Zbuild-std is unstable, and the
#   cargo that builds std should match the std source it reads.
# - rust-lld links wasm: rustup's, under `rustc --print sysroot`, or Debian's
#   /usr/bin/rust-lld (rust-web-llvm, which also brings llc) if rustup has none.
# - wasi-libc: libc and crt1 for wasm32-wasip1, in /usr/lib/wasm32-wasi.
# - pthread stub: on wasip1 std now starts threads through pthread_* and relies
#   on newer wasi-libc's stubs, which fail with EAGAIN. Debian's 2022 wasi-libc
#   has none, so no test binary or CLI would link. We compile six stubs from
#   LLVM IR with rust-web-llvm's llc; std::thread::spawn then returns Err, as it
#   does with rustup's own wasm32-wasip1 std.
# - scripts/wasi-run.mjs: cargo's runner; runs test binaries in node:wasi.
#   wasm is panic=abort, so a failing test stops the run where it is printed.
# - binutils-mingw-w64-x86-64: the windows-gnu tools, for when we link there;
#   `cargo check` needs no linker, so macOS and Windows are type-checked only.
# - target/cross/<target>: Debian's rustc never shares (and invalidates) the
#   rustup toolchain's target/, and each target keeps its own built std.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

LIB_PKG=${LIB_PKG:-segpack}
CLI_PKG=${CLI_PKG:-segpack-cli}
CLI_BIN=${CLI_BIN:-segpack}
DEBIAN_PKGS=(rustc-web rust-web-src cargo-web rust-web-llvm wasi-libc binutils-mingw-w64-x86-64)
WASI_LIBC=/usr/lib/wasm32-wasi
CARGO_DEB=/usr/bin/cargo

die() { echo "cross.sh: $*" >&2; exit 1; }

SUMMARY=()
step() { # NAME COMMAND...: runs it, prints how long it took, stops on failure
  local name=$1 t0=$SECONDS
  shift
  echo "=== $name" >&2
  "$@" || die "FAILED after $((SECONDS - t0))s: $name"
  SUMMARY+=("$(printf '%5ss  %s' $((SECONDS - t0)) "$name")")
  echo "=== $name: $((SECONDS - t0))s" >&2
}

install() {
  local p missing=() sudo=
  for p in "${DEBIAN_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  local log # shown only if it fails
  log=$($sudo env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" 2>&1) || { echo "$log" >&2; return 1; }
}

has_pkg() { # is NAME a package of this workspace?
  grep -q "\"name\":\"$1\",\"version\"" <<<"$METADATA"
}

setup() { # the toolchain and the wasip1 flags; fails early with a reason
  local need have llvm stub
  METADATA=$(cargo metadata --no-deps --format-version 1)
  have=$(/usr/bin/rustc --version | cut -d' ' -f2)
  need=$({ grep -o '"rust_version":"[0-9.]*"' <<<"$METADATA" || true; } | cut -d'"' -f4 | sort -V | tail -n1)
  if [ -n "$need" ] && [ "$(printf '%s\n' "$need" "$have" | sort -V | head -n1)" != "$need" ]; then
    die "Debian's rustc-web is $have, the workspace needs $need (bookworm-security has 1.96)"
  fi
  command -v node >/dev/null || die "node (v20+) runs the wasip1 tests; it is missing"

  # rustup's rust-lld; Debian's (rust-web-llvm, same LLVM) if rustup has none.
  for LLD in "$(rustc --print sysroot)"/lib/rustlib/*/bin/rust-lld /usr/bin/rust-lld; do
    [ -x "$LLD" ] && break
  done
  export CARGO_TARGET_WASM32_WASIP1_LINKER=$LLD
  export CARGO_TARGET_WASM32_WASIP1_RUNNER="node $ROOT/scripts/wasi-run.mjs"

  WASIP1_RUSTFLAGS="-L native=$WASI_LIBC"
  llvm=/usr/lib/llvm-$(/usr/bin/rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')/bin
  if ! "$llvm/llvm-nm" "$WASI_LIBC/libc.a" 2>/dev/null | grep ' T pthread_create$' >/dev/null; then
    stub=$ROOT/target/cross/wasm32-wasip1/pthread-stub.o
    if [ ! -f "$stub" ]; then
      mkdir -p "${stub%/*}"
      # EAGAIN is 6 and EINVAL 28 in WASI; std asserts the attr calls return 0.
      "$llvm/llc" -O2 -filetype=obj -mtriple=wasm32-wasip1 -o "$stub" - <<'EOF'
define i32 @pthread_attr_init(ptr %a) { ret i32 0 }
define i32 @pthread_attr_destroy(ptr %a) { ret i32 0 }
define i32 @pthread_attr_setstacksize(ptr %a, i32 %size) { ret i32 0 }
define i32 @pthread_create(ptr %t, ptr %a, ptr %f, ptr %arg) { ret i32 6 }
define i32 @pthread_join(ptr %t, ptr %ret) { ret i32 28 }
define i32 @pthread_detach(ptr %t) { ret i32 28 }
EOF
    fi
    WASIP1_RUSTFLAGS+=" -C link-arg=$stub"
  fi
}

xcargo() { # TARGET SUBCOMMAND ARGS...: Debian's toolchain, std built from source
  local target=$1 cmd=$2
  shift 2
  local env=(RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1) std=std,panic_abort
  if [ "$target" = wasm32-wasip1 ]; then
    env+=("RUSTFLAGS=${RUSTFLAGS:+$RUSTFLAGS }$WASIP1_RUSTFLAGS") # target crates only
    std+=,test # every crate depends on the std crates: same set for build and test
  fi
  env "${env[@]}" "$CARGO_DEB" "$cmd" -Zbuild-std="$std" \
    --target "$target" --target-dir "$ROOT/target/cross/$target" "$@"
}

# Every step builds std and the dependencies unoptimised and without
# debuginfo, which halves their time (the unit tests run fast enough so). The
# wasip1 build uses the test profile (and builds libtest), so the tests reuse
# all it built.
QUICK=(--config 'profile.dev.package."*".opt-level=0' --config profile.dev.debug=false)

build() {
  local f
  for f in "" --no-default-features; do
    step "build $LIB_PKG wasm32-unknown-unknown ${f:-(default features)}" \
      xcargo wasm32-unknown-unknown build -p "$LIB_PKG" --lib "${QUICK[@]}" $f
  done
  for f in "" --no-default-features; do
    step "build $LIB_PKG wasm32-wasip1 ${f:-(default features)}" \
      xcargo wasm32-wasip1 build -p "$LIB_PKG" --lib --profile test "${QUICK[@]}" $f
  done
}

test_wasi() {
  step "test $LIB_PKG wasm32-wasip1" xcargo wasm32-wasip1 test -p "$LIB_PKG" --lib "${QUICK[@]}"
  step "test $LIB_PKG wasm32-wasip1 --no-default-features" \
    xcargo wasm32-wasip1 test -p "$LIB_PKG" --lib --no-default-features "${QUICK[@]}"
}

check() {
  local t pkgs=(-p "$LIB_PKG")
  if has_pkg "$CLI_PKG"; then pkgs+=(-p "$CLI_PKG"); else echo "no $CLI_PKG: checking $LIB_PKG only" >&2; fi
  for t in x86_64-pc-windows-gnu x86_64-apple-darwin aarch64-apple-darwin; do
    step "check ${pkgs[*]} $t" xcargo "$t" check "${pkgs[@]}" "${QUICK[@]}"
  done
}

wasi_cli() { # stripped, as the npm package ships it: 2 MB, not 14 with line tables
  has_pkg "$CLI_PKG" || die "no package $CLI_PKG in this workspace"
  step "build $CLI_PKG --release wasm32-wasip1" \
    xcargo wasm32-wasip1 build -p "$CLI_PKG" --bin "$CLI_BIN" --release --config profile.release.strip=true
  echo "$ROOT/target/cross/wasm32-wasip1/wasm32-wasip1/release/$CLI_BIN.wasm"
}

what=${1:-all}
case $what in
  install) step install install ;;
  build | test | check | wasi-cli | all)
    step install install
    setup
    case $what in
      build) build ;;
      test) test_wasi ;;
      check) check ;;
      wasi-cli) wasi_cli ;;
      all) build; test_wasi; check ;;
    esac
    ;;
  *) die "usage: scripts/cross.sh [all|install|build|test|check|wasi-cli]" ;;
esac
printf '%s\n' "${SUMMARY[@]}" "$(printf '%5ss  total' "$SECONDS")" >&2
