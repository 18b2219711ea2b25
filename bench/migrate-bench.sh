#!/usr/bin/env bash
# Migration-step overhead (issue: cutover's migrate steps within 1.2x of plain refinery on the
# samples). Builds cutover and bench/refinery-compare (plain refinery + tokio-postgres, outside
# the workspace so tests never compile it), starts a throwaway cluster, prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/out
mkdir -p "$out"
cargo build --release --quiet --ignore-rust-version
cargo build --release --quiet --manifest-path bench/refinery-compare/Cargo.toml
if [ ! -x "$out/venv/bin/python" ] || ! "$out/venv/bin/python" -c 'import psycopg' 2>/dev/null; then
  python3 -m venv "$out/venv"
  "$out/venv/bin/pip" install --quiet 'psycopg[binary]'
fi
cd bench && "../$out/venv/bin/python" migrate_bench.py ../target/release/cutover refinery-compare/target/release/refinery-compare "${ROUNDS:-10}"
