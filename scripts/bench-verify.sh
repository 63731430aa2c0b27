#!/usr/bin/env bash
# Throughput of `recheck verify`: 10,000 generated records on `sim:` at concurrency 1
# and 8, then the first N SciFact training claims with evidence (oracle contexts) on
# the embedded model at concurrency 1 and 4. Usage: scripts/bench-verify.sh [N=10]
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-10}"
cargo build --release -q
bin=target/release/recheck
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 - "$work" "$n" <<'PY'
import json, os, sys
work, n = sys.argv[1], int(sys.argv[2])
with open(os.path.join(work, "sim.jsonl"), "w") as f:
    for i in range(10000):
        f.write(json.dumps({"id": f"r{i}", "question": "Who discovered Uranus?",
            "answer": f"William Herschel discovered Uranus in 1781. The record number is {i}.",
            "contexts": ["Uranus was discovered by William Herschel in 1781.", "It is the seventh planet from the Sun."]}) + "\n")
root = os.environ.get("RECHECK_DATA_ROOT", "../shared/evals")
corpus = {}
with open(os.path.join(root, "scifact/corpus.jsonl")) as f:
    for line in f:
        d = json.loads(line)
        corpus[d["doc_id"]] = d
with open(os.path.join(root, "scifact/claims_train.jsonl")) as f, open(os.path.join(work, "scifact.jsonl"), "w") as out:
    k = 0
    for line in f:
        c = json.loads(line)
        if not c.get("evidence"):
            continue
        ctx = [{"id": str(d), "text": " ".join(corpus[int(d)]["abstract"])} for d in c["evidence"] if int(d) in corpus]
        out.write(json.dumps({"id": str(c["id"]), "answer": c["claim"], "contexts": ctx}) + "\n")
        k += 1
        if k == n:
            break
PY
for c in 1 8; do
  rm -rf "$work/home"
  /usr/bin/time -f "sim: 10000 records, concurrency $c: %e s wall, %U s user, %S s sys, %M KB" \
    "$bin" --home "$work/home" verify "$work/sim.jsonl" --model sim:seed=1 --judge lexical --concurrency "$c" --out "$work/sim.out"
done
for c in 1 4; do
  /usr/bin/time -f "embedded: $n SciFact records, concurrency $c: %e s wall, %U s user, %S s sys" \
    "$bin" verify "$work/scifact.jsonl" --concurrency "$c" --out "$work/scifact-$c.out"
done
python3 - "$work" <<'PY'
import json, os, sys
rows = lambda c: [{k: v for k, v in json.loads(l).items() if k != "trace_id"} for l in open(os.path.join(sys.argv[1], f"scifact-{c}.out"))]
print("embedded rows at concurrency 1 and 4:", "identical (trace ids aside)" if rows(1) == rows(4) else "DIFFER")
PY
