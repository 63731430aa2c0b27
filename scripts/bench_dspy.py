#!/usr/bin/env python3
"""DSPy's side of scripts/bench-peers.sh: N questions through dspy.Predict or a 3-try
dspy.Refine whose reward never passes, caching off, against the same fixed-reply server.
Prints one JSON object with wall time, this process's CPU time (getrusage), peak RSS and
the model calls the server counted."""
import argparse
import json
import resource
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import dspy


def cpu_ms():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return (r.ru_utime + r.ru_stime) * 1000.0


def served(base_url):
    stats = base_url.rsplit("/v1", 1)[0] + "/stats"
    with urllib.request.urlopen(stats) as f:
        return json.load(f)["requests"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", required=True)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--mode", choices=["predict", "refine"], default="predict")
    a = p.parse_args()

    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    lm = dspy.LM("openai/fixed", api_base=a.base_url, api_key="bench", cache=False, num_retries=0)
    dspy.configure(lm=lm)
    module = dspy.Predict("question -> answer")
    if a.mode == "refine":
        module = dspy.Refine(module=module, N=3, reward_fn=lambda args, pred: 0.0, threshold=1.0)

    module(question="warm-up question?")
    calls0, cpu0, wall0 = served(a.base_url), cpu_ms(), time.perf_counter()
    with ThreadPoolExecutor(max_workers=a.concurrency) as pool:
        list(pool.map(lambda i: module(question=f"Question number {i}: is {i} even?"), range(a.n)))
    wall, cpu = time.perf_counter() - wall0, cpu_ms() - cpu0
    calls = served(a.base_url) - calls0
    print(json.dumps({
        "tool": "dspy", "strategy": a.mode, "concurrency": a.concurrency, "questions": a.n,
        "model_calls": calls, "errors": 0, "wall_s": wall, "cpu_ms": cpu,
        "cpu_ms_per_call": cpu / max(calls, 1), "cpu_ms_per_question": cpu / a.n,
        "calls_per_s": calls / wall, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "dspy_version": dspy.__version__,
    }))


if __name__ == "__main__":
    main()
