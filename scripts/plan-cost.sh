#!/usr/bin/env bash
# CPU time (user + sys, the least of REPS runs) and peak RSS of one `pack`
# with one thread, for two builds of segpack side by side, runs interleaved
# so both see the same machine: what a planner change costs.
#
#   scripts/plan-cost.sh BEFORE AFTER SNAPSHOT.wasm... (REPS=5, CAPS="10000 100000")
set -euo pipefail
before=${1:?usage: plan-cost.sh BEFORE AFTER SNAPSHOT.wasm...}
after=${2:?usage: plan-cost.sh BEFORE AFTER SNAPSHOT.wasm...}
shift 2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "| input | cap | CPU before (s) | CPU after (s) | after / before | RSS before (MiB) | RSS after (MiB) |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for f in "$@"; do
  for cap in ${CAPS:-10000 100000}; do
    declare -A cpu=([b]=999 [a]=999) rss=([b]=0 [a]=0)
    for _ in $(seq "${REPS:-5}"); do
      for side in b a; do
        bin=$before; [ $side = a ] && bin=$after
        /usr/bin/time -f "%U %S %M" -o "$tmp/t" "$bin" pack --quiet --threads 1 \
          --max-segments "$cap" "$f" -o "$tmp/out.wasm"
        read -r u s m < "$tmp/t"
        c=$(echo "$u + $s" | bc)
        if [ "$(echo "$c < ${cpu[$side]}" | bc)" = 1 ]; then cpu[$side]=$c; fi
        if [ "$m" -gt "${rss[$side]}" ]; then rss[$side]=$m; fi
      done
    done
    printf '| %s | %s | %.2f | %.2f | %.2f | %.1f | %.1f |\n' "$(basename "$f")" "$cap" \
      "${cpu[b]}" "${cpu[a]}" "$(echo "${cpu[a]} / ${cpu[b]}" | bc -l)" \
      "$(echo "${rss[b]} / 1024" | bc -l)" "$(echo "${rss[a]} / 1024" | bc -l)"
  done
done
