#!/usr/bin/env bash
# recheck's overhead against DSPy on the same loopback OpenAI-compatible server.
#
#   scripts/bench-peers.sh [N] [--no-write]          (REPS=5 pairs a cell by default)
#
# For server latencies of 0 and 50 ms (examples/fixed_reply_server.rs, its own process,
# so its CPU is not counted), runs N questions (default 200) through recheck's `single`
# strategy and a 3-round `self-refine` loop, and through DSPy 3.4.1's `dspy.Predict`
# and `dspy.Refine(N=3)` with a reward that never passes (caching off), at concurrency
# 1 and 32; then 1,000 calls in flight against the 50 ms server (recheck, then the floor). Each side measures its
# own wall time, CPU time (getrusage) and peak RSS; CPU ms per model call is the
# headline. Beside them, the floor: the same calls with no recheck and no DSPy (a bare
# reqwest call and one durable append of the step a call: `pipeline --floor`).
# The sides of a cell run interleaved, REPS times (recheck, DSPy, floor, recheck, ...),
# so drift in the host's speed hits both sides of each pair alike; the table gives each
# side's median and the median of the per-pair ratios with their range.
# DSPy runs in a virtualenv made here from PyPI (target/bench-peers/venv).
# Prints one table and writes it into BENCHMARKS.md (unless --no-write).
set -euo pipefail
cd "$(dirname "$0")/.."

n="${1:-200}"
reps="${REPS:-5}"
write=1
[ "${2:-}" = "--no-write" ] && write=0
out=target/bench-peers
mkdir -p "$out"
results="$out/results.jsonl"
: > "$results"

venv="$out/venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import dspy" 2>/dev/null; then
  echo "bench-peers: creating $venv with dspy==3.4.1" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q dspy==3.4.1
fi

cargo build --release --quiet --example fixed_reply_server
cargo bench --no-run --quiet --bench pipeline 2>/dev/null

server_pid=""
stop_server() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true; server_pid=""; }
trap stop_server EXIT

start_server() {
  local latency="$1" fifo="$out/server.out"
  rm -f "$fifo"
  target/release/examples/fixed_reply_server --latency-ms "$latency" > "$fifo" &
  server_pid=$!
  for _ in $(seq 100); do
    url=$(sed -n 's/^listening on //p' "$fifo" 2>/dev/null)
    [ -n "$url" ] && return 0
    sleep 0.05
  done
  echo "bench-peers: the server did not start" >&2
  exit 1
}

run() { # latency tool strategy concurrency questions rep [durability]
  local latency="$1" tool="$2" strategy="$3" conc="$4" q="$5" rep="$6" durability="${7:-every-step}" line
  if [ "$tool" = recheck ]; then
    line=$(cargo bench --quiet --bench pipeline -- --base-url "$url" --n "$q" --concurrency "$conc" --strategy "$strategy" --rounds 3 --durability "$durability" 2>/dev/null | tail -1)
  elif [ "$tool" = floor ]; then
    line=$(cargo bench --quiet --bench pipeline -- --base-url "$url" --n "$q" --concurrency "$conc" --floor 2>/dev/null | tail -1)
  else
    line=$("$venv/bin/python" scripts/bench_dspy.py --base-url "$url" --n "$q" --concurrency "$conc" --mode "$strategy" 2>/dev/null | tail -1)
  fi
  echo "$line" | python3 -c "import json,sys; d=json.load(sys.stdin); d['latency_ms']=$latency; d['rep']=$rep; print(json.dumps(d))" >> "$results"
  echo "bench-peers: latency $latency ms, $tool $strategy, concurrency $conc: $(tail -1 "$results" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.3f CPU ms/call, %.2f s" % (d["cpu_ms_per_call"], d["wall_s"]))')" >&2
}

for latency in 0 50; do
  start_server "$latency"
  for conc in 1 32; do
    for rep in $(seq "$reps"); do
      run "$latency" recheck single "$conc" "$n" "$rep"
      run "$latency" dspy predict "$conc" "$n" "$rep"
      run "$latency" floor single "$conc" "$n" "$rep"
      run "$latency" recheck self-refine "$conc" "$n" "$rep"
      run "$latency" dspy refine "$conc" "$n" "$rep"
    done
  done
  if [ "$latency" = 0 ]; then
    run 0 recheck single 1 "$n" 1 periodic
  fi
  if [ "$latency" = 50 ]; then
    run 50 recheck single 1000 10000 1
    run 50 floor single 1000 10000 1
  fi
  stop_server
done

cores=$(nproc)
cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)
table=$(python3 scripts/bench_table.py "$results" "$n" "$cores" "$cpu" "$reps")
echo "$table"
if [ "$write" = 1 ]; then
  python3 - "$table" <<'PY'
import re, sys
table = sys.argv[1]
path = "BENCHMARKS.md"
text = open(path).read()
start, end = "<!-- bench-peers:start -->", "<!-- bench-peers:end -->"
block = f"{start}\n{table}\n{end}"
if start in text:
    text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
else:
    text += "\n" + block + "\n"
open(path, "w").write(text)
PY
  echo "bench-peers: wrote the table into BENCHMARKS.md" >&2
fi
