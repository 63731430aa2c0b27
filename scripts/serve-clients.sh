#!/usr/bin/env bash
# Real OpenAI clients against `recheck serve` on the embedded model: the official
# `openai` Python SDK (plain, extra_body options, streaming, a 401, a 400) and DSPy
# 3.4.1. Both come from PyPI into a virtualenv made here (target/serve-clients/venv).
#
#   scripts/serve-clients.sh [--model SPEC] [extra `recheck serve` flags...]
#
# Starts the server with a key on loopback, in a fresh home under target/, runs
# scripts/serve_clients.py against it, stops it with SIGTERM, and checks that every
# request is a completed run in the store.
set -euo pipefail
cd "$(dirname "$0")/.."

out=target/serve-clients
venv="$out/venv"
mkdir -p "$out"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import openai, dspy" 2>/dev/null; then
  echo "serve-clients: creating $venv with openai and dspy==3.4.1" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q openai dspy==3.4.1
fi

cargo build --release --quiet --bin recheck
bin=target/release/recheck
home="$out/home"
rm -rf "$home/traces" "$home/serve.json"
mkdir -p "$home"
# The embedded model: reuse the one the tests fetched, else fetch it.
if [ ! -f "$home/models/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
  "$bin" --home "$home" model fetch >&2
fi

export RECHECK_SERVE_KEY="serve-clients-$$"
"$bin" --home "$home" serve --listen 127.0.0.1:0 --api-key-env RECHECK_SERVE_KEY --json "$@" > "$out/serve.json" 2> "$out/serve.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 200); do
  url=$(python3 -c "import json;print(json.load(open('$out/serve.json'))['url'])" 2>/dev/null || true)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "${url:-}" ] || { echo "serve-clients: the server did not start:" >&2; cat "$out/serve.log" >&2; exit 1; }
echo "serve-clients: recheck serve at $url" >&2

status=0
"$venv/bin/python" scripts/serve_clients.py --base-url "$url/v1" --key "$RECHECK_SERVE_KEY" || status=$?

# While it runs, `traces list` reads through it; after SIGTERM, from the store itself.
"$bin" --home "$home" traces list --json > "$out/runs-live.json"
kill -TERM $pid
wait $pid || { echo "serve-clients: the server exited with an error" >&2; status=1; }
trap - EXIT
"$bin" --home "$home" traces list --json > "$out/runs.json"
python3 - "$out/runs-live.json" "$out/runs.json" <<'PY' || status=1
import json, sys
live = json.load(open(sys.argv[1]))["runs"]
runs = json.load(open(sys.argv[2]))["runs"]
bad = [r["run"]["id"] for r in runs if r["run"]["status"] not in ("completed", "failed")]
ok = not bad and len(live) == len(runs) and all(r["run"]["kind"] == "serve" for r in runs)
print(f"{'ok  ' if ok else 'FAIL'} store: {len(live)} runs listed through the server, {len(runs)} after it stopped, none left running {bad}")
sys.exit(0 if ok else 1)
PY
exit $status
