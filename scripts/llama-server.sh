#!/usr/bin/env bash
# Builds llama.cpp's own server, the anchor the embedded backend's throughput is
# measured against (BENCHMARKS.md). llama-cpp-sys-2 vendors no server sources, but the
# llama-cpp-python sdist on PyPI carries llama.cpp with tools/server: this fetches it
# with pip (no wheel, no build by pip), builds `llama-server` and `llama-batched-bench`
# (llama.cpp's own prefill/generation throughput at several sequences) with cmake under
# target/llama-server/, and prints the server's path. Safe to run again: built
# binaries are reused.
#
#   scripts/llama-server.sh            # build (first time ~10 min on 2 cores), print path
#   $(scripts/llama-server.sh) -m MODEL.gguf --parallel 4 --cont-batching --port 8091
set -euo pipefail
cd "$(dirname "$0")/.."

version=0.3.36
dir=target/llama-server
src="$dir/llama_cpp_python-$version/vendor/llama.cpp"
bin="$dir/build/bin/llama-server"

if [ ! -x "$bin" ] || [ ! -x "$dir/build/bin/llama-batched-bench" ]; then
  mkdir -p "$dir"
  if [ ! -f "$dir/llama_cpp_python-$version.tar.gz" ]; then
    echo "llama-server: fetching the llama-cpp-python==$version sdist from PyPI" >&2
    python3 -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$dir" >&2
  fi
  [ -d "$src" ] || tar xzf "$dir/llama_cpp_python-$version.tar.gz" -C "$dir"
  echo "llama-server: building (cmake, Release, CPU only)" >&2
  cmake -S "$src" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON >&2
  cmake --build "$dir/build" --target llama-server llama-batched-bench -j "$(nproc)" >&2
fi
echo "$bin"
