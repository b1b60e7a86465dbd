#!/usr/bin/env bash
# Every test: set-up (idempotent), formatting, lints, unit tests, and the end-to-end suites
# against real nginx, a real OIDC provider, real MCP servers and clients on loopback.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/env.sh

./scripts/setup.sh
echo "[test] cargo fmt --check"
cargo fmt --all -- --check
echo "[test] cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "[test] cargo test"
cargo test --workspace --no-fail-fast
echo "[test] fuzzing, 20 s per target"
./scripts/fuzz.sh 20
