#!/usr/bin/env bash
# Embedding throughput: recheck's embedded all-MiniLM-L6-v2 (candle, release build)
# against the same model under sentence-transformers on PyTorch, on the same N SciFact
# passages, interleaved ROUNDS times (recheck, torch, recheck, torch, ...).
#
#   scripts/bench-embed.sh [N=2000] [ROUNDS=3]
#
# Makes its own virtualenv (target/st-venv: sentence-transformers and torch from PyPI,
# large wheels). The model directory is the home's cache (`recheck model fetch embedder`).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}
rounds=${2:-3}
venv=target/st-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check sentence-transformers
cargo build --release --bin recheck
home=${RECHECK_HOME:-$HOME/.local/share/recheck}
model_dir=$(RECHECK_HOME="$home" target/release/recheck model fetch embedder)
out=target/bench/embed-throughput.jsonl
mkdir -p target/bench
: > "$out"
passages=target/bench/embed-passages.json
RECHECK_HOME="$home" cargo bench --bench retrieval -- throughput "$n" --write-passages "$passages" >> "$out"
"$venv/bin/python" scripts/bench_embed_st.py "$model_dir" "$passages" >> "$out"
for _ in $(seq 2 "$rounds"); do
  RECHECK_HOME="$home" cargo bench --bench retrieval -- throughput "$n" >> "$out"
  "$venv/bin/python" scripts/bench_embed_st.py "$model_dir" "$passages" >> "$out"
done
cat "$out"
