#!/usr/bin/env bash
# The issue-29 measurements, each an experiment stored in one home and reported from its
# traces: the mistakes protocol on the first N traces of each BIG-Bench Mistake file, and
# friction with `single` against `best-of-n` (N = 4) on the first N items of each friction
# file, compared by `eval compare` (accuracy beside model calls and tokens per item). On
# the embedded model (`local`, the default) or any spec given as MODEL.
# Usage: scripts/bench-mistakes.sh [N=20] [MODEL=local] [HOME_DIR=target/bench-mistakes]
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-20}"
model="${2:-local}"
export RECHECK_HOME="${3:-target/bench-mistakes}"
mkdir -p "$RECHECK_HOME"
cargo build --release --quiet --bin recheck
bin=target/release/recheck

run() { # spec -> run id on stdout; the wall time on stderr
  local start id
  start=$(date +%s)
  id=$("$bin" eval run "evals/$1.toml" --model "$model" --limit "$n" --concurrency 8 2>/dev/null | tail -1)
  echo "$1: run $id, $(( $(date +%s) - start )) s" >&2
  echo "$id"
}

mistakes=$(run mistakes)
single=$(run friction)
best=$(run friction-best-of-n)
"$bin" eval report "$mistakes"
"$bin" eval compare "$single" "$best"
# Every figure above is recomputed from the record: the replays must be identical.
for id in "$mistakes" "$single" "$best"; do
  "$bin" replay "$id" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["run_id"], "replay identical:", d["identical"])'
done
