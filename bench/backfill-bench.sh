#!/usr/bin/env bash
# Backfill benchmark (issue: cutover's backfill of 1,000,000 rows at >= 50% of a single UPDATE's
# throughput, with a concurrent writer's worst latency under 100 ms). Starts its own throwaway
# PostgreSQL cluster (Debian's postgresql, as scripts/test installs it) on a free loopback port.
# Not a test: the figures go into the README by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/out
mkdir -p "$out"
cargo build --release --quiet --ignore-rust-version
if [ ! -x "$out/venv/bin/python" ] || ! "$out/venv/bin/python" -c 'import psycopg' 2>/dev/null; then
  python3 -m venv "$out/venv"
  "$out/venv/bin/pip" install --quiet 'psycopg[binary]'
fi
"$out/venv/bin/python" bench/backfill_bench.py target/release/cutover
