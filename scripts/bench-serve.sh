#!/usr/bin/env bash
# `recheck serve` against the LiteLLM proxy, on the same loopback upstream.
#
#   scripts/bench-serve.sh [N] [--no-write]          (REPS=5 pairs a cell by default)
#
# The upstream is examples/fixed_reply_server.rs in its own process, at 0 ms and 50 ms
# latency. For each, N sequential requests (default 300) go to the upstream alone,
# through `recheck serve` (`single` strategy, tools-only verification: --no-decompose,
# so one upstream call per request, every step stored durably), and through the LiteLLM
# proxy (PyPI `litellm[proxy]`, one worker, no guardrail, its local cost map). Then
# 1,000 concurrent clients for 30 s against each proxy at 50 ms. The load client is
# benches/serve.rs; server CPU and peak RSS are read from /proc for the server's
# process tree. The two proxies run side by side and are loaded in turn, REPS times
# (recheck, LiteLLM, recheck, ...), so drift in the host's speed hits both sides of a
# pair alike; the table gives medians and the median per-pair ratio with its range.
# LiteLLM comes from PyPI into target/bench-serve/venv.
# Prints one table and writes it into BENCHMARKS.md (unless --no-write).
set -euo pipefail
cd "$(dirname "$0")/.."

n="${1:-300}"
reps="${REPS:-5}"
write=1
[ "${2:-}" = "--no-write" ] && write=0
out=target/bench-serve
mkdir -p "$out"
results="$out/results.jsonl"
: > "$results"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

venv="$out/venv"
if [ ! -x "$venv/bin/litellm" ]; then
  echo "bench-serve: creating $venv with litellm[proxy]" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'litellm[proxy]'
fi
litellm_version=$("$venv/bin/python" -c "import importlib.metadata as m; print(m.version('litellm'))")

cargo build --release --quiet --bin recheck --example fixed_reply_server
cargo bench --no-run --quiet --bench serve 2>/dev/null
load() { cargo bench --quiet --bench serve -- "$@" 2>/dev/null | tail -1; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); }
trap cleanup EXIT

wait_for() { # file sed-expression -> prints the match
  for _ in $(seq 600); do
    v=$(sed -n "$2" "$1" 2>/dev/null | head -1)
    [ -n "$v" ] && { echo "$v"; return 0; }
    sleep 0.1
  done
  echo "bench-serve: nothing matched in $1:" >&2; cat "$1" >&2; return 1
}

record() { # label-fields json
  python3 -c "import json,sys; d=json.loads(sys.argv[2]); d.update(json.loads(sys.argv[1])); print(json.dumps(d))" "$1" "$2" >> "$results"
}

free_port() { python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"; }

start_upstream() {
  target/release/examples/fixed_reply_server --latency-ms "$1" > "$out/upstream.out" &
  pids+=($!); upstream_pid=$!
  upstream=$(wait_for "$out/upstream.out" 's/^listening on //p')
}

start_recheck() {
  rm -rf "$out/home"
  target/release/recheck --home "$out/home" serve --model openai:bench --base-url "$upstream" \
    --no-decompose --listen 127.0.0.1:0 --max-in-flight 4096 --json > "$out/recheck.out" 2> "$out/recheck.log" &
  pids+=($!); recheck_pid=$!
  recheck_url="$(wait_for "$out/recheck.out" 's/.*"url":"\([^"]*\)".*/\1/p')/v1"
}

start_litellm() {
  local port; port=$(free_port)
  cat > "$out/litellm.yaml" <<YAML
model_list:
  - model_name: bench
    litellm_params:
      model: openai/bench
      api_base: $upstream
      api_key: bench
YAML
  LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_MASTER_KEY=sk-bench LITELLM_LOG=ERROR \
    "$venv/bin/litellm" --config "$out/litellm.yaml" --host 127.0.0.1 --port "$port" --num_workers 1 \
    > "$out/litellm.log" 2>&1 &
  pids+=($!); litellm_pid=$!
  litellm_url="http://127.0.0.1:$port/v1"
  for _ in $(seq 600); do
    curl -sf -H "Authorization: Bearer sk-bench" "http://127.0.0.1:$port/health/liveliness" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "bench-serve: LiteLLM did not start:" >&2; tail -20 "$out/litellm.log" >&2; exit 1
}

for latency in 0 50; do
  start_upstream "$latency"
  record "{\"side\":\"upstream alone\",\"latency_ms\":$latency}" "$(load --url "$upstream" --n "$n")"
  start_recheck
  start_litellm
  for rep in $(seq "$reps"); do
    record "{\"side\":\"recheck serve\",\"latency_ms\":$latency,\"rep\":$rep}" \
      "$(load --url "$recheck_url" --n "$n" --pid "$recheck_pid")"
    record "{\"side\":\"LiteLLM $litellm_version\",\"latency_ms\":$latency,\"rep\":$rep}" \
      "$(load --url "$litellm_url" --n "$n" --pid "$litellm_pid" --key sk-bench)"
  done
  if [ "$latency" = 50 ]; then
    record "{\"side\":\"recheck serve\",\"latency_ms\":50,\"load\":\"1000x30s\"}" \
      "$(load --url "$recheck_url" --concurrency 1000 --duration 30 --pid "$recheck_pid")"
    record "{\"side\":\"LiteLLM $litellm_version\",\"latency_ms\":50,\"load\":\"1000x30s\"}" \
      "$(load --url "$litellm_url" --concurrency 1000 --duration 30 --pid "$litellm_pid" --key sk-bench)"
  fi
  # Every request through recheck is a stored run.
  kill -TERM "$recheck_pid"; wait "$recheck_pid" 2>/dev/null || true
  stored=$(target/release/recheck --home "$out/home" traces list --json | python3 -c "import json,sys; r=json.load(sys.stdin)['runs']; print(sum(1 for x in r if x['run']['status']=='completed'))")
  echo "bench-serve: $stored completed runs stored at ${latency} ms" >&2
  record "{\"side\":\"recheck store\",\"latency_ms\":$latency}" "{\"stored_runs\":$stored}"
  cleanup
done

python3 scripts/bench_serve_table.py "$results" "$n" $([ "$write" = 1 ] && echo --write BENCHMARKS.md)
