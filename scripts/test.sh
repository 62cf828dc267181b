#!/usr/bin/env bash
# Runs every check and test: formatting, clippy (native and wasm32-wasip2),
# the component build, unit tests and the end-to-end tests against Debian's
# docker-registry and skopeo. Installs what it needs on a fresh Debian machine.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v skopeo >/dev/null || missing+=(skopeo)
command -v pkill >/dev/null || missing+=(procps)
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
rustup target add wasm32-wasip2 >/dev/null
rustup component add clippy rustfmt >/dev/null

cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo clippy --target wasm32-wasip2 --all-targets -- -D warnings
cargo build --target wasm32-wasip2 --release
# --nocapture shows what the tests report (the big layer's throughput and memory).
cargo test -- --nocapture
