#!/usr/bin/env python3
"""Turns target/bench-peers/results.jsonl into the Markdown table bench-peers.sh prints."""
import datetime
import json
import sys

path, n, cores, cpu = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
rows = [json.loads(l) for l in open(path) if l.strip()]
by = {(r["latency_ms"], r["tool"], r["strategy"], r["concurrency"]): r for r in rows if "Periodic" not in r.get("durability", "")}
periodic = [r for r in rows if "Periodic" in r.get("durability", "")]
pairs = [("single", "predict", "one call"), ("self-refine", "refine", "3-round loop")]
out = [
    f"Measured {datetime.date.today()} on {cores} cores ({cpu}); {n} questions a cell; "
    f"command: `scripts/bench-peers.sh {n}`.",
    "",
    "| server latency | workload | concurrency | recheck CPU ms/call | DSPy CPU ms/call | DSPy / recheck | recheck calls | DSPy calls | recheck wall s | DSPy wall s | recheck peak RSS MB | DSPy peak RSS MB |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
]
for lat in (0, 50):
    for ours, theirs, label in pairs:
        for conc in (1, 32):
            a, b = by.get((lat, "recheck", ours, conc)), by.get((lat, "dspy", theirs, conc))
            if not a or not b:
                continue
            ratio = b["cpu_ms_per_call"] / a["cpu_ms_per_call"] if a["cpu_ms_per_call"] > 0 else float("nan")
            out.append(
                f"| {lat} ms | {label} (`{ours}` / `{theirs}`) | {conc} | {a['cpu_ms_per_call']:.3f} | "
                f"{b['cpu_ms_per_call']:.3f} | {ratio:.1f}x | {a['model_calls']} | {b['model_calls']} | "
                f"{a['wall_s']:.2f} | {b['wall_s']:.2f} | {a['peak_rss_mb']:.0f} | {b['peak_rss_mb']:.0f} |"
            )
big = by.get((50, "recheck", "single", 1000))
if big:
    ideal = big["model_calls"] / (1000 / 0.05)
    out += [
        "",
        f"1,000 calls in flight (recheck `single`, 50 ms server): {big['model_calls']} calls in "
        f"{big['wall_s']:.2f} s = {big['calls_per_s']:.0f} calls/s (ideal {1000 / 0.05:.0f}/s, "
        f"{ideal:.2f} s), {big['errors']} errors, peak RSS {big['peak_rss_mb']:.0f} MB, "
        f"{big['cpu_ms_per_call']:.3f} CPU ms/call.",
    ]
one = by.get((50, "recheck", "single", 1))
if one:
    per_call_wall_ms = one["wall_s"] * 1000 / one["model_calls"]
    out.append(
        f"Overhead at 50 ms, concurrency 1: {one['cpu_ms_per_call']:.3f} CPU ms per call against "
        f"{per_call_wall_ms:.1f} ms wall per call ({100 * one['cpu_ms_per_call'] / per_call_wall_ms:.2f}% of wall time "
        f"is recheck's CPU; wall time beyond the server's 50 ms: {per_call_wall_ms - 50:.2f} ms a call, "
        f"{100 * (per_call_wall_ms - 50) / per_call_wall_ms:.1f}%, which includes the trace store's fsyncs)."
    )
for r in periodic:
    out.append(
        f"With `Durability::Periodic` (steps flushed every 200 ms, runs still flushed at start and end), "
        f"`single` at {r['latency_ms']} ms, concurrency {r['concurrency']}: {r['cpu_ms_per_call']:.3f} CPU ms/call."
    )
print("\n".join(out))
