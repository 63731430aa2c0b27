#!/usr/bin/env bash
# A batch replay on the embedded model, end to end: N primality questions from the
# snowball dataset (../shared/evals) asked once each (`single`, one review round
# allowed, tagged `demo`), then all of them forked with the tool-verified critic loop
# (`--change strategy=critic`): each fork reuses its recorded draft and runs the critique
# and revision live. Prints the comparison and writes it as JSON and HTML.
#
#   scripts/batch-replay-demo.sh [N=50]
set -euo pipefail
cd "$(dirname "$0")/.."

n=${1:-50}
data=${RECHECK_DATA_ROOT:-../shared/evals}/snowball_hallucination/primality_testing.json
[ -f "$data" ] || { echo "batch-replay-demo: $data is missing (the snowball dataset)" >&2; exit 1; }
out=target/batch-replay-demo
home="$out/home"
rm -rf "$home/traces"
mkdir -p "$home"
cargo build --release --quiet --bin recheck
bin=target/release/recheck
for cached in target/phoenix/home target/serve-clients/home; do
  if [ ! -f "$home/models/SmolLM2-135M-Instruct.Q4_1.gguf" ] && [ -f "$cached/models/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
    mkdir -p "$home/models" && cp "$cached"/models/SmolLM2-135M-Instruct.Q4_1.gguf* "$home/models/"
  fi
done
[ -f "$home/models/SmolLM2-135M-Instruct.Q4_1.gguf" ] || "$bin" --home "$home" model fetch >&2

python3 -c "import json,sys; [print(q['question']) for q in json.load(open('$data'))[:$n]]" > "$out/questions.txt"
i=0
while IFS= read -r q; do
  i=$((i + 1))
  "$bin" --home "$home" ask "$q" --strategy single --rounds 1 --no-decompose --tag demo --json > /dev/null
  echo "asked $i/$n" >&2
done < "$out/questions.txt"
"$bin" --home "$home" replay --runs tag=demo --change strategy=critic --json --html "$out/forks.html" > "$out/forks.json"
python3 - "$out/forks.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
cells = {(f["before"], f["after"]): f["count"] for f in r["flips"]}
names = [True, False, "unknown"]
label = {True: "verified", False: "refuted", "unknown": "unknown"}
print(f"{r['selected']} runs, {len(r['pairs'])} forks completed, {len(r['skipped'])} skipped; change {r['change']} on {r['model']}")
print(f"{'':<10}" + "".join(f"{label[a]:>10}" for a in names))
for b in names:
    print(f"{label[b]:<10}" + "".join(f"{cells.get((b, a), 0):>10}" for a in names))
def m(k, d=3):
    x = r[k]
    return "undefined" if x["value"] is None else f"{x['value']:.{d}f} [{x['low']:.{d}f}, {x['high']:.{d}f}]"
for k in ["verdict_changed", "answer_changed", "verified_before", "verified_after", "verified_difference"]:
    print(f"{k:<20} {m(k)}")
for k in ["calls_before", "calls_after", "tokens_before", "tokens_after"]:
    print(f"{k:<20} {m(k, 1)}")
PY
echo "report: $out/forks.json, $out/forks.html" >&2
