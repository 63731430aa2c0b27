"""Score a RAGAS-style dataset (user_input, response, retrieved_contexts) with recheck,
into a pandas DataFrame: one row a record with its verdict and faithfulness, and one
row a claim with the quote that decided it.

    python python/examples/ragas_frame.py [--model local|sim:seed=1|openai:MODEL]

The same columns RAGAS's EvaluationDataset takes work as they are; a DataFrame read
from your RAG logs (pd.read_json("logs.jsonl", lines=True)) goes in the same way.
"""

from __future__ import annotations

import argparse

import pandas as pd

import recheck

CONTEXT = (
    "Uranus was discovered by William Herschel in 1781. It has 28 known moons. "
    "Its axis is tilted by 98 degrees."
)

DATASET = pd.DataFrame(
    [
        {
            "user_input": "Who discovered Uranus, and when?",
            "response": "Uranus was discovered by William Herschel in 1781.",
            "retrieved_contexts": [CONTEXT],
        },
        {
            "user_input": "How many moons does Uranus have?",
            # The second sentence is in no context: a claim no context supports.
            "response": "Uranus has 28 known moons. Its rings were photographed by Voyager 2 in 1986.",
            "retrieved_contexts": [CONTEXT],
        },
    ]
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="local", help="model spec (default: the embedded model)")
    parser.add_argument("--judge", default=None, help="model or lexical (default: lexical on sim:, else model)")
    args = parser.parse_args()
    judge = args.judge or ("lexical" if args.model.startswith("sim:") else "model")

    batch = recheck.verify_many(DATASET, model=args.model, judge=judge, claims="sentences")
    scores = DATASET.assign(
        verified=[getattr(r, "verified", None) for r in batch],
        faithfulness=[getattr(r, "faithfulness", None) for r in batch],
        trace_id=[getattr(r, "trace_id", None) for r in batch],
    )
    claims = pd.DataFrame(
        [
            {
                "record": i,
                "claim": c.text,
                "verdict": c.verdict,
                "quote": c.quotes[0].quote if c.quotes else None,
            }
            for i, r in enumerate(batch)
            if isinstance(r, recheck.VerifyResult)
            for c in r.claims
        ]
    )
    with pd.option_context("display.max_colwidth", 60, "display.width", 200, "display.max_columns", 10):
        print(scores[["user_input", "verified", "faithfulness"]].to_string())
        print()
        print(claims.to_string())
    print(f"\nmean faithfulness {scores['faithfulness'].mean():.3f} (batch run {batch.batch_id})")


if __name__ == "__main__":
    main()
