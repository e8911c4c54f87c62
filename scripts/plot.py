#!/usr/bin/env python3
"""Plot compare.sh's results: wall time and peak RSS against input size.

    plot.py OUT FILE [FILE...]     (FILE: .svg or .png)

Reads OUT/results.json (written by report.py) and plots, for the snapshots
(the inputs that form a size series), the minimum wall time and the peak
RSS of cp, segpack and its peers against the input file size, on log-log
axes. Needs matplotlib.
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MB = 1e6
STYLE = {
    # tool: (label, colour, marker, line style)
    "cp": ("cp (in-kernel copy)", "#777777", "s", ":"),
    "cp-sync": ("cp + sync (a durable copy)", "#444444", "s", "--"),
    "segpack": ("segpack (all cores)", "#d62728", "o", "-"),
    "segpack-t1": ("segpack --threads 1", "#ff9896", "o", "--"),
    "segpack-stdin": ("cat | segpack (stdin)", "#9467bd", "v", "-."),
    "segpack-redirect": ("segpack < in > out (stdin is the file)", "#c5b0d5", "v", ":"),
    "cat-pipe": ("cat | cat | cat (the floor of a pipe)", "#bbbbbb", "x", ":"),
    "segpack-pipe": ("cat | segpack | cat", "#17becf", "x", "-."),
    "segpack-100k": ("segpack --max-segments 100000", "#e377c2", "^", ":"),
    "segpack-npm": ("segpack from npm (WASI, node)", "#8c564b", "o", "-."),
    "wasm-opt": ("wasm-opt --memory-packing (binaryen 108)", "#1f77b4", "D", "-"),
    "wasm-opt-js": ("wasm-opt --memory-packing (binaryen 132, node)", "#aec7e8", "D", "--"),
    "wizer": ("Wizer 11 (instantiate + snapshot)", "#2ca02c", "P", "-"),
}


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out, files = sys.argv[1], sys.argv[2:]
    with open(os.path.join(out, "results.json")) as f:
        data = json.load(f)
    rows = [r for r in data["results"]
            if r["input"].startswith("snapshot-") and r["status"] == "ok"]
    series = {}
    for r in rows:
        if r["tool"] in STYLE and r["wall_s"] is not None:
            series.setdefault(r["tool"], []).append(
                (r["input_bytes"] / MB, r["wall_s"], r["rss_kib"] / 1024))
    if not series:
        sys.exit("plot.py: no snapshot results to plot")

    sizes = sorted({p[0] for pts in series.values() for p in pts})
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(12, 5))
    for tool, (label, colour, marker, ls) in STYLE.items():
        pts = sorted(series.get(tool, []))
        if not pts:
            continue
        x = [p[0] for p in pts]
        ax_t.plot(x, [p[1] for p in pts], ls, color=colour, marker=marker, label=label)
        if not tool.startswith("cp") and tool != "cat-pipe":
            ax_m.plot(x, [p[2] for p in pts], ls, color=colour, marker=marker, label=label)
    seg = sorted(series.get("segpack", []))
    if len(seg) >= 2:
        # Linear growth is a line of slope 1 on log-log axes: drawn through
        # segpack's largest input.
        x_max, t_max = seg[-1][0], seg[-1][1]
        ax_t.plot(sizes, [t_max * x / x_max for x in sizes], "-", color="#d62728",
                  linewidth=0.6, alpha=0.5, label="linear in size (through segpack's largest)")
    ax_m.axhline(64, color="#d62728", linestyle=":", linewidth=1, label="target: 64 MiB")

    for ax, ylabel, title in ((ax_t, "wall time, min of runs (s)", "Wall time"),
                              (ax_m, "peak RSS (MiB)", "Peak resident memory")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sizes, [f"{s:.1f}" for s in sizes])
        ax.minorticks_off()
        ax.set_xlabel("input file size (MB): naive snapshots (image = 3.3 × file)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    machine = data.get("machine", {})
    fig.suptitle(f"segpack vs peers — {machine.get('nproc', '?')} cores, "
                 f"{machine.get('cpu', '')}, {machine.get('date', '')}", fontsize=9)
    fig.tight_layout()
    for path in files:
        kwargs = {"metadata": {"Date": None}} if path.endswith(".svg") else {"dpi": 110}
        fig.savefig(path, **kwargs)
        print(f"plot: {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
