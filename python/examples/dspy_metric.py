"""A DSPy program whose answers go through recheck.verify as its metric.

The program answers questions from a context with `dspy.Predict`; its language model is
any OpenAI-compatible server (here `recheck serve` on the embedded model, so every
answer is also stored as a run). Each prediction is verified claim by claim against
the context it was given, and the metric is its faithfulness: the share of its claims
the context supports. `dspy.Evaluate` averages it.

    scripts/py-examples.sh            # makes target/py-examples-venv, starts recheck serve, runs this
    python python/examples/dspy_metric.py --api-base http://127.0.0.1:8787/v1 --verifier local
"""

from __future__ import annotations

import argparse
from typing import Any

import dspy

import recheck

EXAMPLES = [
    ("Uranus was discovered by William Herschel in 1781.", "Who discovered Uranus?"),
    ("Neptune was discovered in 1846 by Johann Galle.", "When was Neptune discovered?"),
    ("Canberra is the capital city of Australia.", "What is the capital of Australia?"),
    ("The Pacific is the largest ocean on Earth.", "Which ocean is the largest?"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api-base", required=True, help="the OpenAI-compatible server DSPy calls (…/v1)")
    parser.add_argument("--lm", default="local", help="the model name the server serves")
    parser.add_argument("--verifier", default="local", help="recheck model spec that verifies the answers")
    parser.add_argument("--judge", default="model", help="model or lexical")
    args = parser.parse_args()

    dspy.configure(lm=dspy.LM(f"openai/{args.lm}", api_base=args.api_base, api_key="none", max_tokens=128))
    verifier = recheck.Model(args.verifier)

    def faithfulness(example: Any, prediction: Any, trace: Any = None) -> float:
        """The metric: the share of the answer's claims its context supports (0 when none)."""
        res = recheck.verify(
            prediction.answer, question=example.question, contexts=[example.context], model=verifier, judge=args.judge
        )
        return res.faithfulness or 0.0

    program = dspy.Predict("context, question -> answer")
    devset = [dspy.Example(context=c, question=q).with_inputs("context", "question") for c, q in EXAMPLES]
    scores = []
    for example in devset:
        try:
            prediction = program(**example.inputs())
        except Exception as e:  # a small model's reply DSPy's adapters cannot parse
            scores.append(0.0)
            print(f"0.00  {example.question} -> no answer DSPy could parse ({type(e).__name__})")
            continue
        score = faithfulness(example, prediction)
        scores.append(score)
        print(f"{score:.2f}  {example.question} -> {prediction.answer!r}")
    print(f"mean faithfulness {sum(scores) / len(scores):.3f} over {len(scores)}")


if __name__ == "__main__":
    main()
