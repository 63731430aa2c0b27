"""RAGAS 0.4.3 faithfulness over records, through an OpenAI-compatible server (run by
scripts/bench-ragas.sh inside its virtualenv). Writes one JSON line a record: its id,
the score or the error, and the seconds it took.

    python bench_ragas.py BASE_URL RECORDS.jsonl OUT.jsonl
"""

import asyncio
import json
import math
import sys
import time

from openai import AsyncOpenAI
from ragas.llms.base import llm_factory
from ragas.metrics.collections import Faithfulness


async def main(base_url, records, out):
    client = AsyncOpenAI(base_url=base_url, api_key="not-needed", max_retries=0, timeout=600)
    # The model name is the server's (recheck serve answers any); a bounded reply keeps
    # a small model's runaway generations from taking minutes.
    llm = llm_factory("local", client=client, max_tokens=512, temperature=0.0)
    metric = Faithfulness(llm=llm)
    with open(records) as f, open(out, "w") as w:
        for line in f:
            r = json.loads(line)
            started = time.time()
            row = {"id": r["id"]}
            try:
                result = await metric.ascore(
                    user_input=r["user_input"], response=r["response"], retrieved_contexts=r["retrieved_contexts"]
                )
                value = result.value
                row["score"] = None if value is None or (isinstance(value, float) and math.isnan(value)) else value
                if row["score"] is None:
                    row["error"] = f"no score ({value!r})"
            except Exception as e:  # the finding is what fails, and how
                row["score"] = None
                row["error"] = f"{type(e).__name__}: {e}".replace("\n", " ")
            row["seconds"] = time.time() - started
            w.write(json.dumps(row) + "\n")
            w.flush()
            print(f"{r['id']}: {row.get('score')} {row.get('error', '')[:100]} ({row['seconds']:.1f} s)", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
