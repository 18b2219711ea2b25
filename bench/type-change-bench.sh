#!/usr/bin/env bash
# Type-change benchmark (issue 14: the backfill of a type-change rewrite on 1,000,000 rows at
# >= 50% of a single `ALTER COLUMN ... TYPE`'s throughput, with the old version's writer's worst
# latency under 100 ms). Starts its own throwaway PostgreSQL cluster (Debian's postgresql, as
# scripts/test installs it) on a free loopback port. Not a test: the figures go into the README
# by hand. ROWS and BATCHES (comma-separated) override the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/out
mkdir -p "$out"
cargo build --release --quiet --ignore-rust-version --bin cutover
if [ ! -x "$out/venv/bin/python" ] || ! "$out/venv/bin/python" -c 'import psycopg' 2>/dev/null; then
  python3 -m venv "$out/venv"
  "$out/venv/bin/pip" install --quiet 'psycopg[binary]'
fi
"$out/venv/bin/python" bench/type_change_bench.py target/release/cutover
