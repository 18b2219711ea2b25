#!/usr/bin/env bash
# Executor benchmarks (issue: durable append >= 80% of raw write+fdatasync; replay of 1,000,000
# events under 1 s; runner overhead per step on 10,000 no-op steps). Not a test: the figures go
# into the README by hand. BENCH_DIR picks the disk (default: target/bench-tmp, on the repository's disk).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/bench-tmp
BENCH_DIR="${BENCH_DIR:-$PWD/target/bench-tmp}" cargo bench -q --ignore-rust-version -p cutover-executor --bench executor
