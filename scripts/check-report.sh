#!/usr/bin/env bash
# Renders an experiment report, and a comparison of two experiments (`eval compare`),
# in headless Chromium and saves screenshots, to check that the self-contained HTML
# pages display (plots, tables) in a real browser.
#
#   scripts/check-report.sh [RUN_ID] [OUT_DIR]
#
# Without RUN_ID it runs evals/friction-multiplication.toml on the `sim:` simulator in
# a scratch home first, and a second run with another planted accuracy to compare it
# with. Writes OUT_DIR/report.html, report.png, compare.html and compare.png (default
# target/report-check). Needs Debian's `chromium` (installed here if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

run_id="${1:-}"
out="${2:-target/report-check}"
mkdir -p "$out"

if ! command -v chromium >/dev/null 2>&1; then
  echo "check-report: installing chromium" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi

cargo build --quiet
bin=target/debug/recheck
other=""
if [ -z "$run_id" ]; then
  export RECHECK_HOME="$out/home"
  rm -rf "$RECHECK_HOME"
  run_id=$("$bin" eval run evals/friction-multiplication.toml --model "sim:accuracy=0.3,adopt=0.4,seed=1" 2>/dev/null)
  other=$("$bin" eval run evals/friction-multiplication.toml --model "sim:accuracy=0.6,adopt=0.4,seed=2" 2>/dev/null)
fi
# Screenshot of page $1.html as $1.png; a tiny image means the page did not render.
shoot() {
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1100,1400 \
    --screenshot="$out/$1.png" "file://$(realpath "$out/$1.html")" 2>/dev/null
  size=$(stat -c %s "$out/$1.png")
  if [ "$size" -lt 20000 ]; then
    echo "check-report: screenshot $out/$1.png is only $size bytes: the page did not render" >&2
    exit 1
  fi
  echo "check-report: $out/$1.html rendered to $out/$1.png ($size bytes)"
}
"$bin" eval report "$run_id" --html "$out/report.html" >/dev/null
shoot report
if [ -n "$other" ]; then
  "$bin" eval compare "$run_id" "$other" --html "$out/compare.html" > "$out/compare.txt"
  shoot compare
fi
