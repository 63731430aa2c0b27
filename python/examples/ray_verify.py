"""Verify a JSONL of RAG records with Ray Data across worker processes, then merge the
workers' stores into one.

Each worker process is a Ray actor with its own recheck store (one process holds a
store at a time) under one root; the records are spread over the actors in batches,
each verified with recheck.verify_many. At the end every worker's runs are imported
into one store (Store.import_), and the summary printed.

    scripts/ray-verify.sh             # a local Ray cluster, 2 workers, 200 records on sim:
    python python/examples/ray_verify.py records.jsonl --root target/ray-stores --workers 2 --model sim:seed=1

On a real cluster, pass --address auto (ray.init joins it) and point the workers at a
vLLM or other OpenAI-compatible fleet: --model openai:MODEL --base-url http://fleet:8000/v1.
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from pathlib import Path
from typing import Any

import ray

import recheck


class Verifier:
    """One worker: a model and a store of its own."""

    def __init__(self, root: str, model: str, base_url: str | None, judge: str) -> None:
        self.home = Path(root) / f"worker-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        settings = {"base_url": base_url} if base_url else {}
        self.model = recheck.Model(model, **settings)
        self.judge = judge

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        records = [dict(zip(batch.keys(), values)) for values in zip(*batch.values())]
        for r in records:
            # Ray hands lists back as arrays; recheck takes plain lists.
            r["contexts"] = [str(c) for c in r.get("contexts", [])]
        out = recheck.verify_many(records, model=self.model, judge=self.judge, store=self.home)
        return {
            "id": [r.id for r in out],
            "faithfulness": [getattr(r, "faithfulness", None) for r in out],
            "verified": [str(getattr(r, "verified", "error")) for r in out],
            "error": [getattr(r, "error", None) for r in out],
            "home": [str(self.home)] * len(out),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("records", help="a JSONL file of {id, question, answer, contexts} records")
    parser.add_argument("--root", default="target/ray-stores", help="where each worker's store goes")
    parser.add_argument("--merged", default=None, help="the merged store's home (default ROOT/merged)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=25)
    parser.add_argument("--model", default="sim:seed=1")
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--judge", default="lexical")
    parser.add_argument("--address", default=None, help="a Ray cluster to join (default: start a local one)")
    args = parser.parse_args()

    # Ray Data's read needs a CPU of its own beside the actors', or it never starts.
    ray.init(address=args.address, num_cpus=None if args.address else args.workers + 1)
    root = Path(args.root).resolve()
    # Blocks enough for every worker to take some (a small file is read as one block).
    rows = ray.data.read_json(args.records, lines=True).repartition(args.workers * 4)
    results = rows.map_batches(
        Verifier,
        fn_constructor_args=(str(root), args.model, args.base_url, args.judge),
        batch_size=args.batch_size,
        compute=ray.data.ActorPoolStrategy(size=args.workers),
    ).take_all()

    merged = recheck.Store(args.merged or root / "merged")
    for home in sorted({r["home"] for r in results}):
        export = Path(home) / "export.jsonl"
        recheck.Store(home).export(export)
        merged.import_(export)
    verify_runs = merged.runs(kind="verify", items=True)
    ids = [r.input.get("id") for r in verify_runs if isinstance(r.input, dict)]
    scores = [r["faithfulness"] for r in results if r["faithfulness"] is not None]
    summary = {
        "records": len(results),
        "workers": len({r["home"] for r in results}),
        "errors": sum(r["error"] is not None for r in results),
        "verified_share": sum(r["verified"] == "True" for r in results) / max(1, len(results)),
        "mean_faithfulness": sum(scores) / max(1, len(scores)),
        "merged_verify_runs": len(verify_runs),
        "each_record_once": sorted(ids) == sorted(r["id"] for r in results) and len(set(ids)) == len(ids),
        "merged_store": str(merged.home),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
