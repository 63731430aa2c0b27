#!/usr/bin/env python3
"""Turns target/bench-peers/results.jsonl into the Markdown table bench-peers.sh prints.

Each cell ran REPS interleaved pairs (recheck, DSPy, floor, ...). A side's figure is its
median over the reps; a ratio is the median of the per-rep ratios (both sides of a rep
ran back to back), with the range over reps beside it.
"""
import datetime
import json
import statistics
import sys

path, n, cores, cpu, reps = sys.argv[1:6]
rows = [json.loads(l) for l in open(path) if l.strip()]
cells = {}
for r in rows:
    if "Periodic" in r.get("durability", ""):
        continue
    cells.setdefault((r["latency_ms"], r["tool"], r["strategy"], r["concurrency"]), {})[r.get("rep", 1)] = r
periodic = [r for r in rows if "Periodic" in r.get("durability", "")]


def med(runs, key="cpu_ms_per_call"):
    return statistics.median(r[key] for r in runs.values())


def ratio(top, bottom):
    """Median and range of top/bottom over the reps both have."""
    both = sorted(set(top) & set(bottom))
    ratios = [top[k]["cpu_ms_per_call"] / bottom[k]["cpu_ms_per_call"] for k in both if bottom[k]["cpu_ms_per_call"] > 0]
    if not ratios:
        return "n/a"
    return f"{statistics.median(ratios):.1f}x [{min(ratios):.1f}, {max(ratios):.1f}]"


pairs = [("single", "predict", "one call"), ("self-refine", "refine", "3-round loop")]
out = [
    f"Measured {datetime.date.today()} on {cores} cores ({cpu}); {n} questions a run, {reps} interleaved "
    f"runs a side a cell; command: `scripts/bench-peers.sh {n}`. Figures are medians over the runs; ratios are "
    "the median of the per-run ratios [min, max].",
    "",
    "| server latency | workload | concurrency | recheck CPU ms/call | DSPy CPU ms/call | DSPy / recheck | floor CPU ms/call | recheck / floor | recheck wall s | DSPy wall s | recheck peak RSS MB | DSPy peak RSS MB |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
]
for lat in (0, 50):
    for ours, theirs, label in pairs:
        for conc in (1, 32):
            a, b = cells.get((lat, "recheck", ours, conc)), cells.get((lat, "dspy", theirs, conc))
            if not a or not b:
                continue
            floor = cells.get((lat, "floor", "single", conc))
            floor_cells = ("", "")
            if floor and ours == "single":
                floor_cells = (f"{med(floor):.3f}", ratio(a, floor))
            elif floor:
                floor_cells = (f"{med(floor):.3f}", "(a call: " + ratio(a, floor) + ")")
            out.append(
                f"| {lat} ms | {label} (`{ours}` / `{theirs}`) | {conc} | {med(a):.3f} | {med(b):.3f} | "
                f"{ratio(b, a)} | {floor_cells[0]} | {floor_cells[1]} | {med(a, 'wall_s'):.2f} | "
                f"{med(b, 'wall_s'):.2f} | {med(a, 'peak_rss_mb'):.0f} | {med(b, 'peak_rss_mb'):.0f} |"
            )
big = cells.get((50, "recheck", "single", 1000), {}).get(1)
if big:
    ideal = big["model_calls"] / (1000 / 0.05)
    out += [
        "",
        f"1,000 calls in flight (recheck `single`, 50 ms server): {big['model_calls']} calls in "
        f"{big['wall_s']:.2f} s = {big['calls_per_s']:.0f} calls/s (ideal {1000 / 0.05:.0f}/s, "
        f"{ideal:.2f} s), {big['errors']} errors, peak RSS {big['peak_rss_mb']:.0f} MB, "
        f"{big['cpu_ms_per_call']:.3f} CPU ms/call.",
    ]
    bare = cells.get((50, "floor", "single", 1000), {}).get(1)
    if bare:
        out[-1] += (
            f" The floor, the same way: {bare['calls_per_s']:.0f} calls/s, {bare['cpu_ms_per_call']:.3f} CPU ms/call"
            f" (recheck / floor: {big['cpu_ms_per_call'] / bare['cpu_ms_per_call']:.1f}x CPU a call)."
        )
one = cells.get((50, "recheck", "single", 1))
if one:
    cpu_ms = med(one)
    per_call_wall_ms = med(one, "wall_s") * 1000 / next(iter(one.values()))["model_calls"]
    out.append(
        f"Overhead at 50 ms, concurrency 1: {cpu_ms:.3f} CPU ms per call against {per_call_wall_ms:.1f} ms wall "
        f"per call ({100 * cpu_ms / per_call_wall_ms:.2f}% of wall time is recheck's CPU; wall time beyond the "
        f"server's 50 ms: {per_call_wall_ms - 50:.2f} ms a call, {100 * (per_call_wall_ms - 50) / per_call_wall_ms:.1f}%, "
        "which includes the trace store's fsync)."
    )
    bare = cells.get((50, "floor", "single", 1))
    if bare:
        bare_wall_ms = med(bare, "wall_s") * 1000 / next(iter(bare.values()))["model_calls"]
        out[-1] += (
            f" The floor, the same way: {med(bare):.3f} CPU ms against {bare_wall_ms:.1f} ms wall a call "
            f"({100 * med(bare) / bare_wall_ms:.2f}% of wall)."
        )
for r in periodic:
    out.append(
        f"With `Durability::Periodic` (steps synced with sled's flush every 200 ms and at each run's end), "
        f"`single` at {r['latency_ms']} ms, concurrency {r['concurrency']}: {r['cpu_ms_per_call']:.3f} CPU ms/call."
    )
print("\n".join(out))
