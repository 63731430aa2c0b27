#!/usr/bin/env bash
# OpenTelemetry export checked against Arize Phoenix: installs `arize-phoenix` from
# PyPI into target/phoenix/venv, starts Phoenix on loopback, makes one `recheck ask`
# run on the embedded model (critic strategy: model calls and exact-tool calls), sends
# it with `recheck traces export --otlp`, reads the spans back through Phoenix's own
# REST API and checks the model name, token counts, input and output of every LLM
# span, the TOOL spans and the root; then takes a screenshot of Phoenix's trace view
# in headless Chromium (installed from Debian's packages when missing).
#
#   scripts/phoenix.sh            # prints the checks and the screenshot's path
set -euo pipefail
cd "$(dirname "$0")/.."

out=target/phoenix
venv="$out/venv"
port=${PHOENIX_PORT:-6006}
mkdir -p "$out"
if [ ! -x "$venv/bin/phoenix" ]; then
  echo "phoenix: creating $venv with arize-phoenix" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "arize-phoenix==20.26.1"
fi
if ! command -v chromium >/dev/null; then
  echo "phoenix: installing Debian's chromium for the screenshot" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
fi

cargo build --release --quiet --bin recheck
bin=target/release/recheck
home="$out/home"
rm -rf "$home/traces" "$out/data"
mkdir -p "$home" "$out/data"
if [ ! -f "$home/models/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
  "$bin" --home "$home" model fetch >&2
fi

PHOENIX_WORKING_DIR="$out/data" PHOENIX_HOST=127.0.0.1 PHOENIX_PORT=$port \
  "$venv/bin/phoenix" serve > "$out/phoenix.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 300); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || { echo "phoenix did not start; see $out/phoenix.log" >&2; exit 1; }

question="Is 7411 a prime number?"
run=$("$bin" --home "$home" ask "$question" --strategy critic --rounds 1 --json | "$venv/bin/python" -c "import json,sys;print(json.load(sys.stdin)['trace_id'])")
"$bin" --home "$home" traces show "$run" --json > "$out/run.json"
"$bin" --home "$home" traces export --otlp "http://127.0.0.1:$port" --run "$run"
"$venv/bin/python" scripts/phoenix_check.py "http://127.0.0.1:$port" "$out/run.json" "$out/screenshot.png"
