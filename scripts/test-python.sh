#!/usr/bin/env bash
# The Python package's tests: a virtualenv under target/ (maturin, pytest, mypy, pandas
# from PyPI, pinned in python/requirements-test.txt), the package built into it in the
# dev profile (it shares `cargo test`'s compiled dependencies), then pytest.
# Extra arguments go to pytest (`scripts/test-python.sh -k store`).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/py-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
# Installs only what is missing or at another version.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r python/requirements-test.txt
# `cargo test` built the `recheck` binary some tests compare with; build it if not.
[ -x target/debug/recheck ] || cargo build --bin recheck
export VIRTUAL_ENV="$PWD/$venv" PATH="$PWD/$venv/bin:$PATH"
(cd python && "$VIRTUAL_ENV/bin/maturin" develop --quiet)
cd python
"$VIRTUAL_ENV/bin/python" -m pytest tests -q "$@"
