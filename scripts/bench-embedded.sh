#!/usr/bin/env bash
# The embedded backend against llama.cpp's own server, on the same GGUF and 2 cores.
#
#   scripts/bench-embedded.sh [N] [CLAIMS]     (REPS=3 rounds by default; SERVE=0 skips
#                                               the serve rounds, keeping the rest)
#
# llama-server (scripts/llama-server.sh builds it from the llama-cpp-python sdist) runs
# with --parallel 4 --cont-batching (prompt caching on, its default) and 4 x 4,096
# tokens of context; `recheck serve` runs the embedded model (default decoding: prefix
# reuse, 4 sequences on 2 cores) with the `single` strategy and tools-only verification
# (--no-decompose: one model call a request). Each round loads, in turn: llama-server
# at 1 and 4 clients, `recheck serve` at 1 and 4 clients (benches/serve.rs: N requests
# of "Is 7411 a prime number?", max_tokens 64, default N 40), so drift hits both sides
# of a pair alike. Then the SciFact verify protocol on its first CLAIMS training claims
# (default 30) at --concurrency 4 three ways: the embedded model; the embedded model
# --deterministic (one call at a time, no reuse); recheck's openai: backend against
# llama-server (whose judge cannot score continuations, so it generates the label).
# Before all that, llama-batched-bench (llama.cpp's prefill and generation tokens/s at
# 1, 4 and 8 sequences, the shape `cargo bench --bench local_model` measures recheck
# at). Writes target/bench-embedded/results.jsonl and prints a table.
set -euo pipefail
cd "$(dirname "$0")/.."

n="${1:-40}"
claims="${2:-30}"
reps="${REPS:-3}"
out=target/bench-embedded
mkdir -p "$out"
results="$out/results.jsonl"
[ "${SERVE:-1}" = 0 ] || : > "$results"

server_bin=$(scripts/llama-server.sh)
cargo build --release --quiet --bin recheck
cargo bench --no-run --quiet --bench serve 2>/dev/null
load() { cargo bench --quiet --bench serve -- "$@" 2>/dev/null | tail -1; }
recheck=target/release/recheck
home="$out/home"
mkdir -p "$home"
model=$("$recheck" --home "$home" model fetch)
llama_version=$("$server_bin" --version 2>&1 | tr '\n' ' ' | sed 's/  */ /g')
echo "bench-embedded: llama-server: $llama_version" >&2

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
free_port() { python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"; }
record() { # fields-json result-json
  python3 -c "import json,sys; d=json.loads(sys.argv[2]); d.update(json.loads(sys.argv[1])); print(json.dumps(d))" "$1" "$2" >> "$results"
}
wait_http() { # url
  for _ in $(seq 600); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "bench-embedded: $1 did not come up" >&2; return 1
}

# llama.cpp's own throughput at 1, 4 and 8 sequences: ~400-token prompts, 100 tokens
# generated each (the shape `cargo bench --bench local_model` measures recheck at).
"$(dirname "$server_bin")/llama-batched-bench" -m "$model" -c 16384 -b 512 -ub 512 -npp 400 -ntg 100 \
  -npl 1,4,8 -t "$(nproc)" > "$out/batched-bench.txt" 2>&1
grep -E '^\|' "$out/batched-bench.txt" >&2 || cat "$out/batched-bench.txt" >&2

lport=$(free_port)
"$server_bin" -m "$model" --host 127.0.0.1 --port "$lport" --parallel 4 --cont-batching -c 16384 \
  --threads "$(nproc)" --threads-batch "$(nproc)" > "$out/llama-server.log" 2>&1 &
pids+=($!); lpid=$!
wait_http "http://127.0.0.1:$lport/health"
llama_url="http://127.0.0.1:$lport/v1"

rport=$(free_port)
rm -rf "$home/traces"
"$recheck" --home "$home" serve --model local --strategy single --no-decompose --listen "127.0.0.1:$rport" \
  --max-in-flight 64 > "$out/recheck.out" 2> "$out/recheck.log" &
pids+=($!); rpid=$!
wait_http "http://127.0.0.1:$rport/health"
recheck_url="http://127.0.0.1:$rport/v1"

[ "${SERVE:-1}" = 0 ] && reps=0
for rep in $(seq "$reps"); do
  for c in 1 4; do
    record "{\"side\":\"llama-server\",\"clients\":$c,\"rep\":$rep}" \
      "$(load --url "$llama_url" --n "$n" --concurrency "$c" --model smollm --pid "$lpid")"
    record "{\"side\":\"recheck serve (embedded)\",\"clients\":$c,\"rep\":$rep}" \
      "$(load --url "$recheck_url" --n "$n" --concurrency "$c" --model local --pid "$rpid")"
  done
done

# `recheck serve` holds its home's store; the protocol runs need it.
kill "$rpid" 2>/dev/null || true
wait "$rpid" 2>/dev/null || true

# The verify protocol, three ways, one after another (llama-server idles meanwhile).
protocol() { # label args...
  local label=$1; shift
  local start end
  start=$(date +%s.%N)
  "$recheck" --home "$home" eval run evals/verify.toml --limit "$claims" --concurrency 4 "$@" \
    > "$out/protocol.out" 2> "$out/protocol.log"
  end=$(date +%s.%N)
  local run; run=$(tail -1 "$out/protocol.out")
  local acc; acc=$("$recheck" --home "$home" eval report "$run" --json | python3 -c \
    "import json,sys; d=json.load(sys.stdin); m=d.get('metrics',d); print(json.dumps((m.get('label_accuracy') or {}).get('value')))" 2>/dev/null || echo null)
  record "{\"side\":\"$label\",\"protocol\":\"verify\",\"claims\":$claims,\"run\":\"$run\"}" \
    "{\"wall_s\": $(python3 -c "print($end - $start)"), \"label_accuracy\": $acc}"
}
protocol "embedded"
protocol "embedded --deterministic" --deterministic
protocol "openai: -> llama-server" --model openai:smollm --base-url "$llama_url"

python3 - "$results" "$llama_version" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"llama-server: {sys.argv[2]}")
print("| side | clients | requests/s (median) | p50 ms | p99 ms |")
print("|---|---|---|---|---|")
for side in ["llama-server", "recheck serve (embedded)"]:
    for c in [1, 4]:
        cell = [r for r in rows if r.get("side") == side and r.get("clients") == c]
        if cell:
            rps = statistics.median(r["requests_per_s"] for r in cell)
            p50 = statistics.median(r["p50_ms"] for r in cell)
            p99 = statistics.median(r["p99_ms"] for r in cell)
            print(f"| {side} | {c} | {rps:.2f} | {p50:.0f} | {p99:.0f} |")
# Per-pair ratios: each round ran both sides back to back at each client count.
def cell(side, c, rep):
    return next((r["requests_per_s"] for r in rows if r.get("side") == side and r.get("clients") == c and r.get("rep") == rep), None)
reps = sorted({r["rep"] for r in rows if "rep" in r})
for c in [1, 4]:
    ratios = [cell("recheck serve (embedded)", c, k) / cell("llama-server", c, k) for k in reps if cell("llama-server", c, k)]
    if ratios:
        print(f"recheck / llama-server at {c} client(s), per round: median {statistics.median(ratios):.2f} [{min(ratios):.2f}, {max(ratios):.2f}]")
for side in ["llama-server", "recheck serve (embedded)"]:
    scale = [cell(side, 4, k) / cell(side, 1, k) for k in reps if cell(side, 1, k)]
    if scale:
        print(f"{side}: 4 clients / 1 client, per round: median {statistics.median(scale):.2f} [{min(scale):.2f}, {max(scale):.2f}]")
for r in rows:
    if r.get("protocol"):
        print(f"verify protocol, {r['claims']} claims, c4, {r['side']}: {r['wall_s']:.1f} s, label accuracy {r['label_accuracy']}")
PY
