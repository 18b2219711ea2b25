#!/usr/bin/env bash
# Release benchmark: failed requests per strategy and router, the blue-green switch time, and the
# time from `cutover rollback` to 100% of traffic on the stable version, all under 150 requests/s
# of keep-alive load through the router. Needs what scripts/test installs, and a Docker engine.
set -euo pipefail
cd "$(dirname "$0")/.."
RUSTFLAGS='-C target-feature=+crt-static' cargo build --release -q -p cutover-sample-app \
  --target x86_64-unknown-linux-gnu --target-dir target/static
cargo build --release -q --ignore-rust-version -p cutover-loadgen
cargo bench -q --ignore-rust-version --bench release
echo "figures: bench/out/release.json"
