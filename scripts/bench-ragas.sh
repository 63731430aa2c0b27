#!/usr/bin/env bash
# RAGAS 0.4.3 faithfulness and `recheck verify` side by side on the same records and
# the same model (the embedded SmolLM2-135M). RAGAS asks through `instructor` in JSON
# mode, which `recheck serve --strategy single --no-decompose` answers with one model
# call a request (a JSON-mode request is passed to the model unverified, and stored).
#
# Makes its own virtualenv under target/ragas-venv (ragas==0.4.3 with
# langchain-community<0.4: the newest breaks its import). Records: the first N
# SciFact training claims with gold evidence, each claim as the response and its cited
# abstracts as the retrieved contexts. Usage: scripts/bench-ragas.sh [N=50]
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-50}"
venv=target/ragas-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import ragas' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'ragas==0.4.3' 'langchain-community<0.4' 'langchain-openai'
fi
cargo build --release -q
bin="$PWD/target/release/recheck"
work="$PWD/target/bench-ragas"
rm -rf "$work" && mkdir -p "$work"
# The model file `recheck model fetch` put in the default home, used by both sides.
"$bin" model fetch >/dev/null
gguf=$(ls "${RECHECK_HOME:-$HOME/.local/share/recheck}"/models/*.gguf | head -1)
model="local:$gguf"
python3 - "$work" "$n" <<'PY'
import json, os, sys
work, n = sys.argv[1], int(sys.argv[2])
root = os.environ.get("RECHECK_DATA_ROOT", "../shared/evals")
corpus = {}
with open(os.path.join(root, "scifact/corpus.jsonl")) as f:
    for line in f:
        d = json.loads(line)
        corpus[d["doc_id"]] = d
with open(os.path.join(root, "scifact/claims_train.jsonl")) as f, open(os.path.join(work, "records.jsonl"), "w") as out:
    k = 0
    for line in f:
        c = json.loads(line)
        if not c.get("evidence"):
            continue
        ctx = [d["title"] + ". " + " ".join(d["abstract"]) for d in (corpus.get(int(i)) for i in c["evidence"]) if d]
        out.write(json.dumps({"id": str(c["id"]), "user_input": "What is known about this claim?",
                              "response": c["claim"], "retrieved_contexts": ctx}) + "\n")
        k += 1
        if k == n:
            break
PY
# recheck: its own verify, on a home of its own (so nothing else holding the default
# store gets in the way).
start=$(date +%s.%N)
RECHECK_HOME="$work/verify-home" "$bin" verify "$work/records.jsonl" --model "$model" --concurrency 1 \
  --out "$work/recheck.jsonl" --skip-bad 2>"$work/recheck.err"
end=$(date +%s.%N)
echo "recheck_seconds $(echo "$end - $start" | bc)" > "$work/recheck.time"
# RAGAS through a server on another home.
home="$work/serve-home"
RECHECK_HOME="$home" "$bin" serve --model "$model" --strategy single --no-decompose --listen 127.0.0.1:0 --json >"$work/serve.json" 2>"$work/serve.err" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do [ -s "$work/serve.json" ] && break; sleep 0.2; done
url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$work/serve.json")
"$venv/bin/python" scripts/bench_ragas.py "$url/v1" "$work/records.jsonl" "$work/ragas.jsonl"
kill $pid; wait $pid 2>/dev/null || true
trap - EXIT
requests=$(RECHECK_HOME="$home" "$bin" traces list --json 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["runs"]))' || echo "?")
python3 - "$work" "$requests" <<'PY'
import json, sys
work, requests = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(f"{work}/recheck.jsonl")]
ok = [r for r in rows if "error" not in r]
scored = [r for r in ok if r.get("faithfulness") is not None]
calls = sum(r.get("model_calls", 0) for r in ok)
secs = float(open(f"{work}/recheck.time").read().split()[1])
ragas = [json.loads(l) for l in open(f"{work}/ragas.jsonl")]
rscored = [r for r in ragas if r.get("score") is not None]
rsecs = sum(r["seconds"] for r in ragas)
errors = {}
for r in ragas:
    if r.get("error"):
        errors[r["error"][:160]] = errors.get(r["error"][:160], 0) + 1
n = len(rows)
print(f"{n} SciFact records, SmolLM2-135M-Instruct (embedded) for both\n")
print("| | records with a usable score | model calls / record | wall s / record | per-claim detail |")
print("|---|---|---|---|---|")
print(f"| recheck verify | {len(scored)} / {n} | {calls / max(len(ok), 1):.1f} | {secs / n:.1f} | claims, spans, verdicts, quotes |")
print(f"| RAGAS 0.4.3 faithfulness | {len(rscored)} / {len(ragas)} | {int(requests) / max(len(ragas), 1):.1f} (server requests) | {rsecs / max(len(ragas), 1):.1f} | a score |" if requests != "?" else "")
if rscored:
    print(f"\nRAGAS mean faithfulness {sum(r['score'] for r in rscored) / len(rscored):.3f}")
if scored:
    print(f"recheck mean faithfulness {sum(r['faithfulness'] for r in scored) / len(scored):.3f}")
print("\nRAGAS errors (first 160 characters, count):")
for e, k in sorted(errors.items(), key=lambda x: -x[1]):
    print(f"  {k} x {e}")
PY
