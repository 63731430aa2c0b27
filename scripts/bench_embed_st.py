"""Embedding throughput of all-MiniLM-L6-v2 under sentence-transformers (PyTorch, CPU),
on the same SciFact passages `cargo bench --bench retrieval -- throughput N` embeds
(title + " " + passage text, passages cut by `recheck index` defaults; their texts are
read from the passages file the Rust side writes). Prints one JSON line.

    target/st-venv/bin/python scripts/bench_embed_st.py MODEL_DIR PASSAGES.json
"""

import json
import sys
import time

import torch
from sentence_transformers import SentenceTransformer


def main() -> None:
    model_dir, passages_file = sys.argv[1], sys.argv[2]
    texts = json.load(open(passages_file))
    model = SentenceTransformer(model_dir, device="cpu")
    model.encode(texts[:16], batch_size=16)
    start = time.perf_counter()
    model.encode(texts, batch_size=64, normalize_embeddings=True)
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "engine": f"sentence-transformers (torch {torch.__version__}, {torch.get_num_threads()} threads)",
                "passages": len(texts),
                "seconds": seconds,
                "passages_per_s": len(texts) / seconds,
            }
        )
    )


if __name__ == "__main__":
    main()
