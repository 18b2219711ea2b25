#!/usr/bin/env bash
# Planner benchmark (issue: plan 2,000 migrations / 50 services under 1 s; lint no slower than
# squawk). Builds the release binary, installs squawk-cli from PyPI into bench/out/venv, generates
# the release and prints a Markdown table. Not a test: numbers go into the README by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/out
mkdir -p "$out"
cargo build --release --quiet --ignore-rust-version
if [ ! -x "$out/venv/bin/squawk" ]; then
  python3 -m venv "$out/venv"
  "$out/venv/bin/pip" install --quiet squawk-cli
fi
python3 bench/gen_release.py "$out/release" 2000 50
python3 bench/plan_bench.py target/release/cutover "$out/venv/bin/squawk" "$out/release" "${RUNS:-10}"
