#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and simulation tests, spec vectors, and the
# end-to-end tests over real node processes. Run from anywhere; needs libclang-dev (for rocksdb)
# and cargo-nextest (falls back to `cargo test` when nextest is missing).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== rustfmt"
cargo fmt --all -- --check

echo "== build (the knoop binary the end-to-end tests run)"
cargo build --workspace --all-targets
cargo build -p knoop-node --bin knoop

echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast -- --test-threads=1
fi

echo "== clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "all tests passed"
