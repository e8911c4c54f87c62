#!/bin/bash
# Runs fuzz campaigns one after the other, gently (niced, one worker), and
# keeps each one's figures in campaign/ (git-ignored):
#
#   ./campaign.sh [SECONDS] [TARGET...]     # default: 480 s, all three
#
# campaign/TARGET.log is libFuzzer's output (its last lines hold the
# stat:: figures), TARGET.start/.end the UTC times, TARGET.rc the status.
# Crashes land in artifacts/TARGET/. See docs/robustness.md.
set -u
cd "$(dirname "$0")"
seconds=${1:-480}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(pack_segments pack_bytes pack_smith)
mkdir -p campaign corpus/pack_bytes corpus/pack_smith corpus/pack_segments
common=(-max_total_time="$seconds" -jobs=1 -workers=1 -print_final_stats=1)
for target in "${targets[@]}"; do
  case $target in
    pack_bytes)
      # Inputs up to 1 MiB; no allocation past 64 MiB (libFuzzer), and
      # the target's own guard, which is tighter.
      args=(corpus/pack_bytes seeds/pack_bytes -- "${common[@]}"
        -rss_limit_mb=1024 -malloc_limit_mb=64 -max_len=1048576) ;;
    pack_smith)
      # wasm-smith needs a few KiB of entropy for interesting modules:
      # start at the full length instead of growing to it.
      args=(corpus/pack_smith -- "${common[@]}"
        -rss_limit_mb=1536 -max_len=4096 -len_control=0) ;;
    pack_segments)
      args=(corpus/pack_segments -- "${common[@]}"
        -rss_limit_mb=1024 -malloc_limit_mb=64) ;;
    *) echo "unknown target $target" >&2; exit 2 ;;
  esac
  date -u +%FT%TZ > "campaign/$target.start"
  nice -n 19 cargo +nightly fuzz run "$target" "${args[@]}" > "campaign/$target.out" 2>&1
  echo $? > "campaign/$target.rc"
  date -u +%FT%TZ > "campaign/$target.end"
  # With -jobs, libFuzzer's own output goes to fuzz-0.log.
  [ -f fuzz-0.log ] && mv fuzz-0.log "campaign/$target.log"
done
