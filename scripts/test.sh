#!/usr/bin/env bash
# The whole test suite, as the README gives it and CI runs it: the build dependencies,
# the Rust tests, then the Python package built into target/py-venv and its tests.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo test
./scripts/test-python.sh
