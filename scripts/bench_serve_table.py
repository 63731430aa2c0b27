"""The table of scripts/bench-serve.sh: recheck serve against LiteLLM on one upstream.

Reads the JSON lines the script collected; prints a Markdown table; with --write FILE,
puts it between the `<!-- bench-serve -->` markers of FILE (appended once if absent).
"""

import json
import statistics
import sys


def main():
    path, n = sys.argv[1], sys.argv[2]
    rows = [json.loads(l) for l in open(path) if l.strip()]
    seq = [r for r in rows if "load" not in r and "stored_runs" not in r]
    load = [r for r in rows if r.get("load")]
    stored = {r["latency_ms"]: r["stored_runs"] for r in rows if "stored_runs" in r}
    alone = {r["latency_ms"]: r for r in seq if r["side"] == "upstream alone"}

    def f(v, d=2):
        return "-" if v is None else f"{v:.{d}f}"

    # Each proxy's cell: the median over its interleaved runs; the ratio of server CPU is
    # the median of the per-run ratios (the two sides of a run were loaded back to back).
    cells = {}
    for r in seq:
        cells.setdefault((r["latency_ms"], r["side"]), []).append(r)

    def med(runs, key):
        vals = [r[key] for r in runs if r.get(key) is not None]
        return statistics.median(vals) if vals else None

    reps = max((len(v) for v in cells.values()), default=1)
    out = [f"Sequential requests (N = {n} a run, one client, {reps} interleaved runs a proxy; medians), same upstream:", "",
           "| upstream latency | path | p50 ms | p99 ms | added p50 ms | server CPU ms/request | errors |",
           "|---|---|---|---|---|---|---|"]
    for (lat, side), runs in cells.items():
        base = alone.get(lat)
        p50 = med(runs, "p50_ms")
        added = None if side == "upstream alone" or base is None else p50 - base["p50_ms"]
        errors = sum(r["errors"] for r in runs)
        out.append(f"| {lat} ms | {side} | {f(p50)} | {f(med(runs, 'p99_ms'))} | {f(added)} | "
                   f"{f(med(runs, 'server_cpu_ms_per_request'))} | {errors} |")
    for lat in sorted({lat for lat, _ in cells}):
        ours = {r.get("rep"): r for (l, side), runs in cells.items() if l == lat and side == "recheck serve" for r in runs}
        theirs = {r.get("rep"): r for (l, side), runs in cells.items() if l == lat and side.startswith("LiteLLM") for r in runs}
        ratios = [theirs[k]["server_cpu_ms_per_request"] / ours[k]["server_cpu_ms_per_request"]
                  for k in sorted(set(ours) & set(theirs))
                  if ours[k].get("server_cpu_ms_per_request") and theirs[k].get("server_cpu_ms_per_request")]
        if ratios:
            out.append(f"\nServer CPU per request at {lat} ms, LiteLLM / recheck serve, per interleaved pair: "
                       f"{statistics.median(ratios):.1f}x [{min(ratios):.1f}, {max(ratios):.1f}] over {len(ratios)} pairs.")
    out += ["", "1,000 concurrent clients for 30 s, 50 ms upstream:", "",
            "| path | requests/s | p50 ms | p99 ms | errors | server CPU ms/request | server peak RSS MB |",
            "|---|---|---|---|---|---|---|"]
    for r in load:
        out.append(f"| {r['side']} | {f(r['requests_per_s'], 0)} | {f(r['p50_ms'])} | {f(r['p99_ms'])} | "
                   f"{r['errors']} | {f(r.get('server_cpu_ms_per_request'))} | {f(r.get('server_peak_rss_mb'), 0)} |")
    out += ["", "Runs stored by recheck serve (completed): " +
            ", ".join(f"{k} ms upstream: {v}" for k, v in sorted(stored.items()))]
    table = "\n".join(out)
    print(table)
    if "--write" in sys.argv:
        target = sys.argv[sys.argv.index("--write") + 1]
        text = open(target).read()
        start, end = "<!-- bench-serve -->", "<!-- /bench-serve -->"
        block = f"{start}\n{table}\n{end}"
        if start in text and end in text:
            text = text[:text.index(start)] + block + text[text.index(end) + len(end):]
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
        open(target, "w").write(text)


if __name__ == "__main__":
    main()
