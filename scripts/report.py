#!/usr/bin/env python3
"""Turn compare.sh's raw results into tables, ratios and target checks.

    report.py [OUT]     (default: bench-out)

Reads OUT/results.csv and OUT/machine.txt; prints Markdown tables on stdout
and writes the same to OUT/table.md and everything as JSON to
OUT/results.json. Standard library only.
"""
import csv
import json
import os
import sys

TOOLS = ["cp", "cp-sync", "segpack-t1", "segpack", "segpack-100k", "segpack-stdin",
         "segpack-redirect", "cat-pipe", "segpack-pipe", "out-disk", "read-then-write", "segpack-npm", "segpack-npm-100k", "wasm-opt", "wasm-opt-js", "wizer"]
NPM = ("segpack-npm", "segpack-npm-100k")
MIB = 1024 * 1024
RSS_LIMIT_KIB = 64 * 1024
# Data sections are compared with their size LEB counted at its minimal
# width (wasminfo.py): Go pads it to 5 bytes, binaryen re-encodes it, and
# segpack keeps an unchanged section byte for byte (SPEC 1.3).
DATA = "data_min_bytes"


def num(s, kind=float):
    return kind(s) if s not in ("", None) else None


def load(out):
    rows = []
    with open(os.path.join(out, "results.csv"), newline="") as f:
        for r in csv.DictReader(f):
            rows.append({
                "input": r["input"],
                "input_bytes": int(r["input_bytes"]),
                "tool": r["tool"],
                "status": r["status"],
                "runs": int(r["runs"] or 0),
                "wall_s": num(r["wall_s"]),
                "wall_runs_s": [float(x) for x in r["wall_runs_s"].split()],
                "rss_kib": num(r["rss_kib"], int),
                "out_bytes": num(r["out_bytes"], int),
                "data_bytes": num(r["data_bytes"], int),
                "segments": num(r["segments"], int),
                "valid": r["valid"] or None,
                "data_min_bytes": num(r.get("data_min_bytes"), int),
            })
    machine = {}
    path = os.path.join(out, "machine.txt")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition(": ")
                machine[k] = v
    return rows, machine


def fmt(v, spec="{:,}", na="n/a"):
    return na if v is None else spec.format(v)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def mib(kib):
    return None if kib is None else kib / 1024


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "bench-out"
    rows, machine = load(out)
    inputs = []
    by = {}
    for r in rows:
        if r["input"] not in by:
            inputs.append(r["input"])
            by[r["input"]] = {}
        by[r["input"]][r["tool"]] = r

    def get(inp, tool, key):
        r = by[inp].get(tool)
        if r is None or r["status"] not in ("ok",):
            return None
        return r[key]

    lines = []
    p = lines.append

    # --- the full table --------------------------------------------------
    p("| input | tool | wall (s) | × cp | peak RSS (MiB) | output (B) | data section (B) | segments |")
    p("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for inp in inputs:
        src = by[inp].get("input")
        if src:
            p(f"| {inp} | *input* | | | | {fmt(src['out_bytes'])} | {fmt(src['data_bytes'])} "
              f"| {fmt(src['segments'])} |")
        cp = get(inp, "cp", "wall_s")
        for tool in TOOLS:
            r = by[inp].get(tool)
            if r is None:
                continue
            if r["status"] != "ok":
                p(f"| {inp} | {tool} | n/a ({r['status']}) | | | | | |")
                continue
            bad = " (INVALID)" if r["valid"] == "no" else ""
            p(f"| {inp} | {tool}{bad} | {r['wall_s']:.3f} | {fmt(ratio(r['wall_s'], cp), '{:.2f}')} "
              f"| {r['rss_kib'] / 1024:.1f} | {fmt(r['out_bytes'])} | {fmt(r['data_bytes'])} "
              f"| {fmt(r['segments'])} |")
    p("")

    # --- ratios ------------------------------------------------------------
    p("Ratios. Time: segpack / cp (below 1 is faster than a copy), peer / segpack "
      "(how many times slower the peer is). Peak RSS: peer / segpack. Data section: "
      "segpack (cap 10,000) / Wizer, segpack --max-segments 100000 / wasm-opt (below 1 "
      "is smaller), with the difference in bytes; data sections compared with their size "
      "LEB at minimal width (Go pads it to 5 bytes, binaryen rewrites it, segpack keeps an "
      "unchanged section as it is).")
    p("")
    p("| input | segpack / cp | segpack-t1 / cp | stdin / cp | wasm-opt / segpack | Wizer / segpack "
      "| RSS wasm-opt / segpack | RSS Wizer / segpack | segpack RSS file / stdin (MiB) "
      "| data segpack / Wizer | data segpack-100k / wasm-opt |")
    p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    ratios = {}
    for inp in inputs:
        seg = get(inp, "segpack", "wall_s")
        seg_rss = get(inp, "segpack", "rss_kib")
        cp = get(inp, "cp", "wall_s")
        d = {
            "segpack/cp": ratio(seg, cp),
            "segpack-t1/cp": ratio(get(inp, "segpack-t1", "wall_s"), cp),
            "segpack-stdin/cp": ratio(get(inp, "segpack-stdin", "wall_s"), cp),
            "wasm-opt/segpack": ratio(get(inp, "wasm-opt", "wall_s"), seg),
            "wasm-opt-js/segpack": ratio(get(inp, "wasm-opt-js", "wall_s"), seg),
            "wizer/segpack": ratio(get(inp, "wizer", "wall_s"), seg),
            "rss wasm-opt/segpack": ratio(get(inp, "wasm-opt", "rss_kib"), seg_rss),
            "rss wizer/segpack": ratio(get(inp, "wizer", "rss_kib"), seg_rss),
            "segpack_rss_mib": mib(seg_rss),
            "segpack_stdin_rss_mib": mib(get(inp, "segpack-stdin", "rss_kib")),
            "data segpack/wizer": ratio(get(inp, "segpack", DATA),
                                        get(inp, "wizer", DATA)),
            "data segpack-100k/wasm-opt": ratio(get(inp, "segpack-100k", DATA),
                                                get(inp, "wasm-opt", DATA)),
            "data_segpack_minus_wizer": None,
            "data_segpack100k_minus_wasm_opt": None,
        }
        if get(inp, "wizer", DATA) is not None and get(inp, "segpack", DATA) is not None:
            d["data_segpack_minus_wizer"] = get(inp, "segpack", DATA) - get(inp, "wizer", DATA)
        if get(inp, "wasm-opt", DATA) is not None and get(inp, "segpack-100k", DATA) is not None:
            d["data_segpack100k_minus_wasm_opt"] = (get(inp, "segpack-100k", DATA)
                                                    - get(inp, "wasm-opt", DATA))
        ratios[inp] = d
        rss = fmt(d["segpack_rss_mib"], "{:.1f}")
        if d["segpack_stdin_rss_mib"] is not None:
            rss += f" / {d['segpack_stdin_rss_mib']:.1f}"

        def with_diff(r, diff):
            if r is None:
                return "n/a"
            return f"{r:.4f} ({diff:+,} B)"

        p(f"| {inp} | {fmt(d['segpack/cp'], '{:.2f}')} | {fmt(d['segpack-t1/cp'], '{:.2f}')} "
          f"| {fmt(d['segpack-stdin/cp'], '{:.2f}')} "
          f"| {fmt(d['wasm-opt/segpack'], '{:.1f}')} | {fmt(d['wizer/segpack'], '{:.1f}')} "
          f"| {fmt(d['rss wasm-opt/segpack'], '{:.1f}')} | {fmt(d['rss wizer/segpack'], '{:.1f}')} "
          f"| {rss} "
          f"| {with_diff(d['data segpack/wizer'], d['data_segpack_minus_wizer'])} "
          f"| {with_diff(d['data segpack-100k/wasm-opt'], d['data_segpack100k_minus_wasm_opt'])} |")
    p("")

    # --- the targets of issue 6 ------------------------------------------
    checks = []

    def check(name, ok, detail):
        checks.append({"target": name, "met": ok, "detail": detail})

    # The npm build reads its input into memory (no mmap in Wasm): its own
    # budget, input + 64 MiB, is checked below.
    seg_rss = [(r["rss_kib"], r["input"], r["tool"]) for r in rows
               if r["tool"].startswith("segpack") and r["tool"] not in NPM
               and r["status"] == "ok"]
    if seg_rss:
        worst = max(seg_rss)
        check("peak RSS <= 64 MiB, every input, file and stdin", worst[0] <= RSS_LIMIT_KIB,
              f"largest {worst[0] / 1024:.1f} MiB ({worst[2]} on {worst[1]})")
    snaps = sorted((i for i in inputs if i.startswith("snapshot-")),
                   key=lambda i: by[i]["input"]["input_bytes"] if "input" in by[i] else 0)
    if "snapshot-1g.wasm" in by:
        r = ratios["snapshot-1g.wasm"]["segpack/cp"]
        check("1 GiB: segpack wall <= 1.5x cp (aim 1.0x)", r is not None and r <= 1.5,
              f"segpack / cp = {fmt(r, '{:.2f}')}")
    for s in ("snapshot-256m.wasm", "snapshot-1g.wasm"):
        if s in by:
            r = ratios[s]["wasm-opt/segpack"]
            check(f"{s}: >= 20x faster than wasm-opt", None if r is None else r >= 20,
                  f"wasm-opt / segpack = {fmt(r, '{:.1f}')}")
    diffs = [(i, ratios[i]["data_segpack_minus_wizer"]) for i in inputs
             if ratios[i]["data_segpack_minus_wizer"] is not None]
    if diffs:
        check("data section <= Wizer's (cap 10,000), where Wizer runs",
              all(d <= 0 for _, d in diffs),
              ", ".join(f"{i}: {d:+,} B" for i, d in diffs))
    diffs = [(i, ratios[i]["data_segpack100k_minus_wasm_opt"]) for i in inputs
             if ratios[i]["data_segpack100k_minus_wasm_opt"] is not None]
    if diffs:
        check("data section with --max-segments 100000 <= wasm-opt's",
              all(d <= 0 for _, d in diffs),
              ", ".join(f"{i}: {d:+,} B" for i, d in diffs))
    if len(snaps) >= 2:
        small, big = snaps[0], snaps[-1]
        per = [(s, get(s, "segpack", "wall_s"), by[s]["input"]["input_bytes"]) for s in snaps]
        per = [(s, w / (b / 1e6) * 1e3) for s, w, b in per if w is not None]
        detail = ", ".join(f"{s}: {v:.2f} ms/MB" for s, v in per)
        check("time grows linearly with input size (segpack ms per input MB)", None, detail)
        rs, rb = get(small, "segpack", "rss_kib"), get(big, "segpack", "rss_kib")
        if rs and rb:
            check("memory does not grow with input size",
                  rb <= RSS_LIMIT_KIB,
                  f"{small}: {rs / 1024:.1f} MiB, {big}: {rb / 1024:.1f} MiB "
                  f"(input {by[big]['input']['input_bytes'] / by[small]['input']['input_bytes']:.1f}x larger)")
    p("| target (issue 6) | met | measured |")
    p("| --- | --- | --- |")
    for c in checks:
        met = {True: "yes", False: "**no**", None: "see numbers"}[c["met"]]
        p(f"| {c['target']} | {met} | {c['detail']} |")

    # --- at the physical limit (issue 17) ---------------------------------------
    limit_inputs = [i for i in snaps if get(i, "cp", "wall_s") is not None]
    if limit_inputs:
        p("")
        p("At the physical limit: each segpack row against the floor of its own path, "
          "measured in the same run (file to file: cp, and out-disk, the sync alone of segpack's "
          "own output copied beforehand: the disk's time for the output's bytes; stdin from "
          "the file: the file-to-file segpack time; a pipe: the same pipeline with cat in segpack's place, "
          "and read-then-write, the input through a pipe and then the output's bytes), and "
          "time per input MB (linear growth: a flat column).")
        p("")
        p("| input | input (MB) | segpack / cp | segpack / (cp + sync) | segpack / out-disk "
          "| segpack-100k / cp | segpack-100k / out-disk "
          "| redirect / file | pipe / cat-pipe | pipe / read-then-write "
          "| segpack ms per MB | segpack-100k ms per MB | peak RSS (MiB) |")
        p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for inp in limit_inputs:
            size = by[inp]["input"]["input_bytes"] if "input" in by[inp] else None
            cp = get(inp, "cp", "wall_s")
            seg, s100 = get(inp, "segpack", "wall_s"), get(inp, "segpack-100k", "wall_s")
            out_disk = get(inp, "out-disk", "wall_s")
            pipe = get(inp, "segpack-pipe", "wall_s")
            d = ratios.setdefault(inp, {})
            d["segpack-100k/cp"] = ratio(s100, cp)
            d["segpack/cp-sync"] = ratio(seg, get(inp, "cp-sync", "wall_s"))
            d["segpack/out-disk"] = ratio(seg, out_disk)
            d["segpack-100k/out-disk"] = ratio(s100, out_disk)
            d["segpack-redirect/segpack"] = ratio(get(inp, "segpack-redirect", "wall_s"), seg)
            d["segpack-pipe/cat-pipe"] = ratio(pipe, get(inp, "cat-pipe", "wall_s"))
            d["segpack-pipe/read-then-write"] = ratio(pipe, get(inp, "read-then-write", "wall_s"))
            per = [None if (w is None or not size) else w / (size / 1e6) * 1e3 for w in (seg, s100)]
            rss = max((get(inp, t, "rss_kib") or 0) for t in TOOLS if t.startswith("segpack")
                      and t not in NPM)
            p(f"| {inp} | {fmt(None if size is None else size / 1e6, '{:,.0f}')} "
              f"| {fmt(ratio(seg, cp), '{:.2f}')} | {fmt(d['segpack/cp-sync'], '{:.2f}')} "
              f"| {fmt(d['segpack/out-disk'], '{:.2f}')} "
              f"| {fmt(d['segpack-100k/cp'], '{:.2f}')} "
              f"| {fmt(d['segpack-100k/out-disk'], '{:.2f}')} "
              f"| {fmt(d['segpack-redirect/segpack'], '{:.2f}')} "
              f"| {fmt(d['segpack-pipe/cat-pipe'], '{:.2f}')} "
              f"| {fmt(d['segpack-pipe/read-then-write'], '{:.2f}')} "
              f"| {fmt(per[0], '{:.2f}')} | {fmt(per[1], '{:.2f}')} | {fmt(mib(rss), '{:.1f}')} |")

    # --- the npm package against binaryen's npm build (issue 16) --------------
    npm_inputs = [i for i in inputs if get(i, "segpack-npm", "wall_s") is not None]
    if npm_inputs:
        p("")
        p("The npm package (segpack-npm: the CLI built for wasm32-wasip1, run by Node's WASI; "
          "segpack-npm-100k: with --max-segments 100000) against the native CLI (all cores) "
          "and binaryen's npm build (wasm-opt-js, which reads no components). Sizes at "
          "wasm-opt's cap, segpack-npm-100k / wasm-opt-js (below 1 is smaller): the data "
          "section (what packing decides) and the whole file (binaryen also rewrites the "
          "other sections). RSS budget: input + 64 MiB.")
        p("")
        p("| input | input (MiB) | npm (s) | npm / native | wasm-opt-js (s) | wasm-opt-js / npm "
          "| npm RSS (MiB) | npm-100k RSS (MiB) | budget (MiB) | wasm-opt-js RSS (MiB) "
          "| data npm-100k / wasm-opt-js | file npm-100k / wasm-opt-js |")
        p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        npm_checks = []
        for inp in npm_inputs:
            size = by[inp]["input"]["input_bytes"] if "input" in by[inp] else None
            npm_s = get(inp, "segpack-npm", "wall_s")
            js_s = get(inp, "wasm-opt-js", "wall_s")
            rss = get(inp, "segpack-npm", "rss_kib")
            rss100 = get(inp, "segpack-npm-100k", "rss_kib")
            budget = None if size is None else size / 1024 + RSS_LIMIT_KIB
            f_ratio = ratio(get(inp, "segpack-npm-100k", "out_bytes"),
                            get(inp, "wasm-opt-js", "out_bytes"))
            d_ratio = ratio(get(inp, "segpack-npm-100k", DATA), get(inp, "wasm-opt-js", DATA))
            speed = ratio(js_s, npm_s)
            d = ratios[inp]
            d["wasm-opt-js/segpack-npm"] = speed
            d["segpack-npm/segpack"] = ratio(npm_s, get(inp, "segpack", "wall_s"))
            d["segpack_npm_rss_mib"] = mib(rss)
            d["segpack_npm_100k_rss_mib"] = mib(rss100)
            d["data segpack-npm-100k/wasm-opt-js"] = d_ratio
            d["file segpack-npm-100k/wasm-opt-js"] = f_ratio
            p(f"| {inp} | {fmt(None if size is None else size / MIB, '{:.1f}')} | {npm_s:.3f} "
              f"| {fmt(d['segpack-npm/segpack'], '{:.1f}')} | {fmt(js_s, '{:.3f}')} "
              f"| {fmt(speed, '{:.1f}')} | {fmt(mib(rss), '{:.1f}')} | {fmt(mib(rss100), '{:.1f}')} "
              f"| {fmt(None if budget is None else budget / 1024, '{:.1f}')} "
              f"| {fmt(mib(get(inp, 'wasm-opt-js', 'rss_kib')), '{:.1f}')} "
              f"| {fmt(d_ratio, '{:.4f}')} | {fmt(f_ratio, '{:.4f}')} |")
            npm_checks.append((inp, speed, rss, rss100, budget, d_ratio))

        def target(name, pairs, good, show):
            if not pairs:
                return
            met = all(good(*x[1:]) for x in pairs)
            detail = ", ".join(f"{x[0]}: {show(*x[1:])}" for x in pairs)
            checks.append({"target": f"npm: {name}", "met": met, "detail": detail})
            p(f"| {name} | {'yes' if met else '**no**'} | {detail} |")

        # Issue 16 names the snapshots and the corpus components; the other
        # corpus modules are in the table, and in the last rows here.
        named = [x for x in npm_checks if x[0].startswith("snapshot-") or ".component." in x[0]]
        others = [x for x in npm_checks if x not in named]
        p("")
        p("| target (issue 16; snapshots and components) | met | measured |")
        p("| --- | --- | --- |")
        target(">= 10x faster than wasm-opt-js",
               [(i, s) for i, s, *_ in named if s is not None],
               lambda s: s >= 10, lambda s: f"{s:.1f}x")
        target("data section at 100,000 never larger than wasm-opt-js's (every input)",
               [(i, dr) for i, *_, dr in npm_checks if dr is not None],
               lambda dr: dr <= 1, lambda dr: f"{dr:.4f}")
        target("peak RSS <= input + 64 MiB (default cap)",
               [(i, r, b) for i, _, r, _, b, _ in named if b is not None and r is not None],
               lambda r, b: r <= b, lambda r, b: f"{r / 1024:.1f} of {b / 1024:.1f} MiB")
        target("peak RSS <= input + 64 MiB (--max-segments 100000)",
               [(i, r, b) for i, _, _, r, b, _ in named if b is not None and r is not None],
               lambda r, b: r <= b, lambda r, b: f"{r / 1024:.1f} of {b / 1024:.1f} MiB")
        target("the other corpus modules: >= 10x faster than wasm-opt-js",
               [(i, s) for i, s, *_ in others if s is not None],
               lambda s: s >= 10, lambda s: f"{s:.1f}x")
        target("the other corpus modules: peak RSS <= input + 64 MiB (default cap)",
               [(i, r, b) for i, _, r, _, b, _ in others if b is not None and r is not None],
               lambda r, b: r <= b, lambda r, b: f"{r / 1024:.1f} of {b / 1024:.1f} MiB")

    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"machine": machine, "results": rows, "ratios": ratios, "targets": checks},
                  f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
