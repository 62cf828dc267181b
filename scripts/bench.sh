#!/usr/bin/env bash
# The full benchmark: a 1 GiB layer, 3 repetitions; writes docs/benchmarks.md.
# (`cargo test`, and so ./scripts/test.sh, runs a smoke-sized version.)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v docker-registry >/dev/null || { echo "needs Debian's docker-registry (./scripts/test.sh installs it)"; exit 1; }
rustup target add wasm32-wasip2 >/dev/null
cargo build --target wasm32-wasip2 --release
BENCH=full cargo test --test bench -- --nocapture
