#!/usr/bin/env python3
"""Writes evals/data/multiplication.jsonl: 5-digit multiplications with exact answers
(the code-generated task family of Jiang et al., 2025). Deterministic: seed 2025."""
import json
import random
import sys

rng = random.Random(2025)
out = sys.argv[1] if len(sys.argv) > 1 else "evals/data/multiplication.jsonl"
with open(out, "w") as f:
    for i in range(100):
        a, b = rng.randint(10000, 99999), rng.randint(10000, 99999)
        f.write(json.dumps({"id": i, "question": f"What is {a} * {b}?", "answer": str(a * b)}) + "\n")
