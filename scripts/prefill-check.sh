#!/usr/bin/env bash
# Does an OpenAI-compatible server continue a prefilled assistant turn? Tried the way a
# new user would: installs llama-cpp-python's server from PyPI into target/llamacpp/venv
# (a source build, several minutes on 2 cores), serves the embedded SmolLM2 GGUF on
# loopback, then runs the blind-spot experiment against it without and with --prefill.
# Both are refused: without --prefill the backend makes no claim; with it, recheck's
# check finds the server closing the turn and names the prompt token counts. Exits
# non-zero if either run is accepted.
#
#   scripts/prefill-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

out=target/llamacpp
venv="$out/venv"
port=${LLAMACPP_PORT:-8077}
mkdir -p "$out"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import llama_cpp.server" 2>/dev/null; then
  echo "prefill-check: building llama-cpp-python[server]==0.3.36 into $venv" >&2
  python3 -m venv "$venv"
  MAKEFLAGS=-j2 "$venv/bin/pip" install -q "llama-cpp-python[server]==0.3.36"
fi

cargo build --release --quiet --bin recheck
bin=target/release/recheck
home="$out/home"
rm -rf "$home/traces"
mkdir -p "$home"
model="$home/models/SmolLM2-135M-Instruct.Q4_1.gguf"
[ -f "$model" ] || "$bin" --home "$home" model fetch >&2

"$venv/bin/python" -m llama_cpp.server --model "$model" --model_alias smollm2 --port "$port" --n_ctx 2048 \
  > "$out/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 60); do
  curl -sf "http://127.0.0.1:$port/v1/models" >/dev/null && break
  sleep 1
done

status=0
for flag in "" "--prefill"; do
  echo "== recheck eval run evals/blindspot.toml --model openai:smollm2 $flag"
  if "$bin" --home "$home" eval run evals/blindspot.toml --data-root ../shared/evals --limit 3 \
      --model openai:smollm2 --base-url "http://127.0.0.1:$port/v1" $flag; then
    echo "prefill-check: the run was accepted; it should have been refused" >&2
    status=1
  fi
done
exit $status
