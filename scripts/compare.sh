#!/usr/bin/env bash
# Compare segpack with its peers in one run: wall time, peak RSS, output size
# and data-section size, on the benchmark snapshots and the real corpus.
#
#   scripts/compare.sh [--quick] [--reps N] [--snap-dir DIR] [--out DIR] [--no-corpus]
#                      [--sizes "MIB ..."] [--memory64 MIB] [--tools LIST]
#                      [--rev REV | --worktree | --segpack PATH]
#                      [--timeout SECONDS] [--wait-quiet LOAD]
#
#   --quick         skip the 1 GiB snapshot and run each command once
#   --reps N        run each command N times (default 3, 1 with --quick)
#   --snap-dir DIR  where the snapshots are (default: bench-out/snap); any that
#                   are missing are written there by ../shared/bench/make_snapshots.sh
#   --out DIR       results directory (default: bench-out)
#   --no-corpus     only the snapshots
#   --sizes LIST    snapshot image sizes in MiB (default "64 256 1024"; 1024 is
#                   snapshot-1g.wasm, N is snapshot-Nm.wasm; 4000 is the largest
#                   a 32-bit memory holds)
#   --memory64 MIB  also a memory64 snapshot with an image of MIB MiB
#                   (benches/memory64_snapshot.sh: snapshot-m64-MIBm.wasm; 6144
#                   gives a 6 GiB image in a 1.9 GB file)
#   --tools LIST    only these rows, comma-separated (e.g. cp,segpack,segpack-100k)
#   --rev REV       benchmark the committed revision REV (default HEAD): its
#                   tree (git archive) is built with `cargo build --release` in
#                   OUT/build, target dir target/bench-rev, so uncommitted edits
#                   in the work tree do not leak into the figures
#   --worktree      build and benchmark the work tree as it is instead
#   --segpack PATH  use this binary instead of building one
#   --timeout S     give up on one run of a command after S seconds (default 600)
#   --wait-quiet L  before measuring, wait until the 1-minute load average is
#                   below L (polled every 30 s, at most 20 minutes); the load
#                   at the start and end is written to machine.txt
#
# Tools, per input (each given the same input file):
#   cp              cp IN OUT                      (the floor: an in-kernel copy)
#   cp-sync         cp IN OUT && sync OUT          (the floor of a durable copy: an in-place segpack
#                   syncs its output before renaming it into place, SPEC §8)
#   segpack-t1      segpack pack --threads 1 IN -o OUT
#   segpack         segpack pack IN -o OUT         (all cores)
#   segpack-100k    segpack pack --max-segments 100000 IN -o OUT   (wasm-opt's cap)
#   segpack-inplace segpack pack OUT -o OUT, after an untimed cp IN OUT and sync
#                   (in place: synced before and after the rename, SPEC §8)
#   cp-existing     cp IN OUT over an existing OUT (an untimed cp IN OUT and sync first: a
#                   rebuild's output from an earlier run)
#   segpack-existing  segpack pack IN -o OUT over an existing OUT, made the same way (Linux:
#                   exchanged with it, so ext4 does not write the new file out at the rename)
#   segpack-stdin   cat IN | segpack pack > OUT    (snapshots only)
#   segpack-redirect  segpack pack < IN > OUT      (stdin is the file; snapshots only)
#   cat-pipe        cat IN | cat | cat > OUT       (the floor of a pipe; snapshots only)
#   segpack-pipe    cat IN | segpack pack | cat > OUT   (snapshots only)
#   out-disk        sync OUT, after an untimed cp PACKED OUT   (snapshots only; PACKED is
#                   segpack's output for IN, made once untimed: the disk's own time for
#                   the output's bytes, which a durable pack cannot finish before)
#   read-then-write cat IN | cat > /dev/null; cat PACKED | cat > OUT   (snapshots only:
#                   the floor of a pipe for a tool that reads all of its input before
#                   writing its first byte, as SPEC §8 has it: the input through a pipe,
#                   then the output's bytes through a pipe, with no spool and no plan)
#   segpack-npm     node npm/bin/segpack.js pack IN -o OUT   (the npm package: the CLI
#                   built for wasm32-wasip1, run by Node's WASI; needs npm/segpack.wasm,
#                   from scripts/build-npm.sh, which builds the work tree, whatever --rev)
#   segpack-npm-100k  the same with --max-segments 100000 (wasm-opt's cap)
#   wasm-opt        wasm-opt --memory-packing -all IN -o OUT        (core modules only)
#   wasm-opt-js     wasm-opt-js --memory-packing -all --disable-compact-imports IN -o OUT
#   wizer           wizer IN -o OUT --init-func wizer.initialize
#                   (only modules exporting wizer.initialize: the snapshots)
#
# Each command runs 3 times (1 with --quick) after the input was read once
# (warm cache), with `sync` and the old output removed before each run, outside
# the timing. Wall time is the minimum over the runs, measured around the
# command with bash's $EPOCHREALTIME (microseconds); peak RSS is the largest
# "maximum resident set size" of `/usr/bin/time -f '%e %M'` over the runs (for
# the pipelines: of the middle command alone, not of the cats). A run over 20 s
# is not repeated. Missing peers, failures and time-outs are reported as n/a.
#
# Peers are looked up on PATH, with ../peers/bin put first when it exists.
# Raw results: OUT/results.csv, OUT/results.json, OUT/table.md, OUT/machine.txt,
# and the plot OUT/plot.svg (scripts/plot.py, with matplotlib from bench-out/venv,
# created with pip when missing; --plot FILE writes it there too).
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SEGPACK_SHARED:-$ROOT/../shared}
CORPUS=${SEGPACK_CORPUS:-$SHARED/corpus}
PEERS_BIN=${SEGPACK_PEERS_BIN:-$ROOT/../peers/bin}
[ -d "$PEERS_BIN" ] && export PATH="$PEERS_BIN:$PATH"

quick=0 corpus=1 timeout_s=600 segpack= out=$ROOT/bench-out snap= rev=HEAD worktree=0
wait_quiet= plot_copy= reps_arg= sizes_arg= memory64= tools=
args="$*"
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=1 ;;
    --reps) reps_arg=$2; shift ;;
    --no-corpus) corpus=0 ;;
    --sizes) sizes_arg=$2; shift ;;
    --memory64) memory64=$2; shift ;;
    --tools) tools=$2; shift ;;
    --snap-dir) snap=$2; shift ;;
    --out) out=$2; shift ;;
    --segpack) segpack=$2; shift ;;
    --rev) rev=$2; shift ;;
    --worktree) worktree=1 ;;
    --timeout) timeout_s=$2; shift ;;
    --wait-quiet) wait_quiet=$2; shift ;;
    --plot) plot_copy=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
snap=${snap:-$out/snap}
reps=3
sizes="64 256 1024"
if [ $quick = 1 ]; then reps=1; sizes="64 256"; fi
reps=${reps_arg:-$reps}
sizes=${sizes_arg:-$sizes}

mkdir -p "$out" "$snap"
out=$(cd "$out" && pwd)
work=$out/work          # outputs of the runs, deleted as we go
logs=$out/logs
rm -rf "$work" "$logs"
mkdir -p "$work" "$logs"
csv=$out/results.csv
tf=$work/time.txt
info="python3 $ROOT/scripts/wasminfo.py"

# --- segpack itself -----------------------------------------------------------
segpack_what=
if [ -n "$segpack" ]; then
  segpack_what="given binary $segpack"
elif [ $worktree = 1 ]; then
  echo "building the work tree (cargo build --release)" >&2
  (cd "$ROOT" && cargo build --release --quiet)
  segpack=$ROOT/target/release/segpack
  segpack_what="work tree at $(cd "$ROOT" && git rev-parse --short HEAD)$(cd "$ROOT" && git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ' + uncommitted changes to src/Cargo')"
else
  commit=$(cd "$ROOT" && git rev-parse --verify "$rev^{commit}")
  build=$out/build/$commit
  if [ ! -x "$build/segpack" ]; then
    echo "building segpack at $rev ($commit) in $build" >&2
    rm -rf "$build"
    mkdir -p "$build/src"
    (cd "$ROOT" && git archive "$commit") | tar -x -C "$build/src"
    (cd "$build/src" && CARGO_TARGET_DIR=$ROOT/target/bench-rev cargo build --release --locked --quiet)
    cp "$ROOT/target/bench-rev/release/segpack" "$build/segpack"
  fi
  segpack=$build/segpack
  segpack_what="commit $commit"
fi
[ -x "$segpack" ] || { echo "compare.sh: no segpack binary at $segpack" >&2; exit 1; }

# --- a quiet machine ------------------------------------------------------------
load1() { cut -d' ' -f1 /proc/loadavg; }
if [ -n "$wait_quiet" ]; then
  for ((i = 0; i < 40; i++)); do
    awk -v l="$(load1)" -v m="$wait_quiet" 'BEGIN {exit !(l < m)}' && break
    echo "load $(load1) >= $wait_quiet, waiting 30 s ($i/40)" >&2
    sleep 30
  done
fi
load_start=$(cat /proc/loadavg)

# --- the machine --------------------------------------------------------------
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "kernel: $(uname -sr)"
  echo "filesystem: $(df -T "$out" | awk 'NR==2 {print $2}') (outputs in $work)"
  echo "disk: $(df "$out" | awk 'NR==2 {print $1}') $(lsblk -dno NAME,MODEL,ROTA "$(df "$out" | awk 'NR==2 {print $1}')" 2>/dev/null | awk '{print ($NF == 0 ? "non-rotational" : "rotational")}')"
  echo "segpack: $("$segpack" --version), $segpack_what"
  if [ -f "$ROOT/npm/segpack.wasm" ]; then
    echo "segpack-npm: $(node "$ROOT/npm/bin/segpack.js" --version), npm/segpack.wasm of $(date -u -r "$ROOT/npm/segpack.wasm" +%Y-%m-%dT%H:%M:%SZ), node $(node --version)"
  else
    echo "segpack-npm: n/a (no npm/segpack.wasm: run scripts/build-npm.sh)"
  fi
  for t in wasm-opt wasm-opt-js wizer wasm-tools; do
    if ! command -v $t >/dev/null 2>&1; then
      echo "$t: n/a (not on PATH)"
    elif [ $t = wizer ]; then
      # wizer has no --version; the npm package that ships it knows it
      pkg=$(dirname "$(readlink -f "$(command -v wizer)")")/package.json
      echo "wizer: $(sed -n 's/.*"version": *"\([^"]*\)".*/wizer \1 (npm)/p' "$pkg" 2>/dev/null | head -1)"
    else
      echo "$t: $($t --version 2>&1 | head -1)"
    fi
  done
  echo "mode: $([ $quick = 1 ] && echo quick || echo full), runs per command: $reps, timeout: ${timeout_s}s"
  echo "command: scripts/compare.sh $args"
  echo "load at start: $load_start"
} >"$out/machine.txt"
cat "$out/machine.txt" >&2

# --- the inputs ---------------------------------------------------------------
inputs=()
missing=()
for mib in $sizes; do
  tag=$([ "$mib" = 1024 ] && echo 1g || echo "${mib}m")
  [ -f "$snap/snapshot-$tag.wasm" ] || missing+=("$mib")
  inputs+=("$snap/snapshot-$tag.wasm")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "generating snapshots (${missing[*]} MiB) into $snap" >&2
  SIZES="${missing[*]}" "$SHARED/bench/make_snapshots.sh" "$snap" >&2
fi
if [ -n "$memory64" ]; then
  m64=$snap/snapshot-m64-${memory64}m.wasm
  if [ ! -f "$m64" ]; then
    echo "generating the memory64 snapshot ($memory64 MiB) into $m64" >&2
    SHARED=$SHARED "$ROOT/benches/memory64_snapshot.sh" "$m64" "$memory64" >&2
  fi
  inputs+=("$m64")
fi
if [ $corpus = 1 ]; then
  if compgen -G "$CORPUS/*.wasm" >/dev/null; then
    inputs+=("$CORPUS"/*.wasm)
  else
    echo "compare.sh: no corpus at $CORPUS, snapshots only" >&2
  fi
fi

# --- measuring ----------------------------------------------------------------
usec() { local t=${EPOCHREALTIME}; echo "${t/./}"; }

echo "input,input_bytes,tool,status,runs,wall_s,wall_runs_s,rss_kib,out_bytes,data_bytes,segments,valid,data_min_bytes" >"$csv"

# wanted TOOL: whether --tools lets TOOL's row run (every row without it)
wanted() { [ -z "$tools" ] || [[ ",$tools," == *",$1,"* ]]; }

# measure INPUT TOOL MODE OUT CMD...
#   MODE file: run CMD; stdin: cat INPUT | CMD > OUT; redirect: CMD < INPUT > OUT;
#   pipe: cat INPUT | CMD | cat > OUT; disk: cp CMD OUT untimed, then sync OUT;
#   inplace: cp INPUT OUT and sync untimed, then CMD (which rewrites or replaces OUT)
measure() {
  local input=$1 tool=$2 mode=$3 output=$4
  shift 4
  wanted "$tool" || return 0
  local name status=ok runs=0 best= all= rss=0 i t0 t1 us rc log
  name=$(basename "$input")
  log=$logs/$name.$tool.log
  for ((i = 0; i < reps; i++)); do
    rm -f "$output" "$tf"
    sync
    rc=0
    if [ "$mode" = stdin ]; then
      t0=$(usec)
      cat "$input" | timeout "$timeout_s" /usr/bin/time -o "$tf" -f '%e %M' "$@" >"$output" 2>"$log" || rc=$?
      t1=$(usec)
    elif [ "$mode" = redirect ]; then
      t0=$(usec)
      timeout "$timeout_s" /usr/bin/time -o "$tf" -f '%e %M' "$@" <"$input" >"$output" 2>"$log" || rc=$?
      t1=$(usec)
    elif [ "$mode" = inplace ]; then
      cp "$input" "$output"
      sync
      t0=$(usec)
      timeout "$timeout_s" /usr/bin/time -o "$tf" -f '%e %M' "$@" >"$log" 2>&1 || rc=$?
      t1=$(usec)
    elif [ "$mode" = disk ]; then
      cp "$1" "$output"
      t0=$(usec)
      timeout "$timeout_s" /usr/bin/time -o "$tf" -f '%e %M' sync "$output" 2>"$log" || rc=$?
      t1=$(usec)
    elif [ "$mode" = pipe ]; then
      t0=$(usec)
      cat "$input" | timeout "$timeout_s" /usr/bin/time -o "$tf" -f '%e %M' "$@" 2>"$log" | cat >"$output" || rc=$?
      t1=$(usec)
    else
      t0=$(usec)
      timeout "$timeout_s" /usr/bin/time -o "$tf" -f '%e %M' "$@" >"$log" 2>&1 || rc=$?
      t1=$(usec)
    fi
    if [ $rc = 124 ]; then status=timeout; break; fi
    if [ $rc != 0 ]; then status="exit-$rc"; break; fi
    runs=$((runs + 1))
    us=$((t1 - t0))
    all="$all${all:+ }$(printf '%d.%06d' $((us / 1000000)) $((us % 1000000)))"
    if [ -z "$best" ] || [ $us -lt $best ]; then best=$us; fi
    local m
    m=$(awk 'END {print $2}' "$tf")
    if [ "$m" -gt "$rss" ]; then rss=$m; fi
    # a slow peer is not worth two more runs
    if [ $us -gt 20000000 ]; then break; fi
  done
  local out_bytes= data= segs= valid= wall= dmin=
  if [ $status = ok ]; then
    wall=$(printf '%d.%06d' $((best / 1000000)) $((best % 1000000)))
    out_bytes=$(stat -L -c %s "$output")
    read -r _ data segs dmin < <($info data "$output")
    if [[ $tool == segpack* ]] && command -v wasm-tools >/dev/null 2>&1; then
      if wasm-tools validate --features all "$output" 2>>"$log"; then valid=yes; else valid=no; fi
    fi
  else
    rss=
    echo "  $tool on $name: $status (see $log)" >&2
  fi
  echo "$name,$(stat -L -c %s "$input"),$tool,$status,$runs,$wall,$all,$rss,$out_bytes,$data,$segs,$valid,$dmin" >>"$csv"
  printf '  %-14s %-8s %10s s %8s KiB %12s B  data %12s B %7s segs %s\n' \
    "$tool" "$status" "${wall:-n/a}" "${rss:-n/a}" "${out_bytes:-n/a}" "${data:-n/a}" "${segs:-n/a}" "$valid" >&2
  rm -f "$output"
}

# na INPUT TOOL REASON: a row for a tool that does not apply or is missing
na() {
  wanted "$2" || return 0
  echo "$(basename "$1"),$(stat -L -c %s "$1"),$2,$3,0,,,,,,,," >>"$csv"
  printf '  %-14s n/a (%s)\n' "$2" "$3" >&2
}

have() { command -v "$1" >/dev/null 2>&1; }

for input in "${inputs[@]}"; do
  name=$(basename "$input")
  read -r kind data segs dmin < <($info data "$input")
  echo "$name: $(stat -L -c %s "$input") bytes, $kind, data section $data bytes, $segs segments" >&2
  echo "$name,$(stat -L -c %s "$input"),input,ok,0,,,,$(stat -L -c %s "$input"),$data,$segs,,$dmin" >>"$csv"
  cat "$input" >/dev/null   # warm the page cache
  o=$work/out.wasm

  measure "$input" cp file "$o" cp "$input" "$o"
  measure "$input" cp-sync file "$o" sh -c 'cp "$1" "$2" && sync "$2"' sh "$input" "$o"
  measure "$input" segpack-t1 file "$o" "$segpack" pack --threads 1 "$input" -o "$o"
  measure "$input" segpack file "$o" "$segpack" pack "$input" -o "$o"
  measure "$input" segpack-100k file "$o" "$segpack" pack --max-segments 100000 "$input" -o "$o"
  measure "$input" segpack-inplace inplace "$o" "$segpack" pack "$o" -o "$o"
  measure "$input" cp-existing inplace "$o" cp "$input" "$o"
  measure "$input" segpack-existing inplace "$o" "$segpack" pack "$input" -o "$o"
  case $name in
    snapshot-*)
      measure "$input" segpack-stdin stdin "$o" "$segpack" pack
      measure "$input" segpack-redirect redirect "$o" "$segpack" pack
      measure "$input" cat-pipe pipe "$o" cat
      measure "$input" segpack-pipe pipe "$o" "$segpack" pack
      if wanted out-disk || wanted read-then-write; then
        packed=$work/packed.wasm
        "$segpack" pack --quiet "$input" -o "$packed"
        measure "$input" out-disk disk "$o" "$packed"
        measure "$input" read-then-write file "$o" \
          sh -c 'cat "$1" | cat >/dev/null && cat "$2" | cat >"$3"' sh "$input" "$packed" "$o"
        rm -f "$packed"
      fi
      ;;
  esac
  if [ -f "$ROOT/npm/segpack.wasm" ] && have node; then
    measure "$input" segpack-npm file "$o" node "$ROOT/npm/bin/segpack.js" pack "$input" -o "$o"
    measure "$input" segpack-npm-100k file "$o" node "$ROOT/npm/bin/segpack.js" pack --max-segments 100000 "$input" -o "$o"
  else
    na "$input" segpack-npm "not-built"
    na "$input" segpack-npm-100k "not-built"
  fi

  if [ "$kind" = component ]; then
    na "$input" wasm-opt "component"
    na "$input" wasm-opt-js "component"
  else
    if have wasm-opt; then
      measure "$input" wasm-opt file "$o" wasm-opt --memory-packing -all "$input" -o "$o"
    else na "$input" wasm-opt "missing"; fi
    if have wasm-opt-js; then
      measure "$input" wasm-opt-js file "$o" wasm-opt-js --memory-packing -all --disable-compact-imports "$input" -o "$o"
    else na "$input" wasm-opt-js "missing"; fi
  fi

  exports=$($info exports "$input")
  if ! grep -qx 'wizer.initialize' <<<"$exports"; then
    na "$input" wizer "no-wizer.initialize"
  elif have wizer; then
    measure "$input" wizer file "$o" wizer "$input" -o "$o" --init-func wizer.initialize
  else
    na "$input" wizer "missing"
  fi
done

rm -rf "$work"
echo "load at end: $(cat /proc/loadavg)" >>"$out/machine.txt"
python3 "$ROOT/scripts/report.py" "$out"

# --- the plot -------------------------------------------------------------------
venv=$ROOT/bench-out/venv
py=$venv/bin/python
if ! "$py" -c 'import matplotlib' 2>/dev/null; then
  echo "installing matplotlib into $venv for the plot" >&2
  { python3 -m venv "$venv" && "$py" -m pip install -q matplotlib; } >&2 || true
fi
if "$py" -c 'import matplotlib' 2>/dev/null; then
  "$py" "$ROOT/scripts/plot.py" "$out" "$out/plot.svg" ${plot_copy:+"$plot_copy"}
else
  echo "compare.sh: no matplotlib, no plot" >&2
fi
