#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and simulation tests, spec vectors, the layer
# check of the node library, the end-to-end tests over real node processes, and a short run of
# every fuzz target. Run from
# anywhere; needs libclang-dev (for rocksdb), clippy, PostgreSQL (the PostgreSQL store's tests),
# and cargo-nextest (falls back to `cargo test` when nextest is missing).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== rustfmt"
cargo fmt --all -- --check

# rocksdb's C++ compiled once as a unity build (tests/rocksdb.sh says why), linked by the
# librocksdb-sys crate instead of compiling it file by file.
rocksdb_lib="$(tests/rocksdb.sh)"
if [ -n "$rocksdb_lib" ]; then
  export ROCKSDB_LIB_DIR="$rocksdb_lib" ROCKSDB_STATIC=1
fi

# Clippy lints inside the one build: clippy-driver compiles the workspace's own crates (what
# `cargo clippy` does, but producing the real artifacts), so every dependency, rocksdb's C++
# included, is compiled once for the build, the lints and the tests. Warnings, clippy's among
# them, are errors in knoop's crates ([workspace.lints] in Cargo.toml).
CLIPPY_DRIVER="$(command -v clippy-driver || true)"
if [ -z "$CLIPPY_DRIVER" ]; then
  echo "clippy-driver not found: rustup component add clippy" >&2
  exit 1
fi
export RUSTC_WORKSPACE_WRAPPER="$CLIPPY_DRIVER"

echo "== build and clippy (all targets; the knoop binary the end-to-end tests run among them)"
cargo build --workspace --all-targets

echo "== tests"
# The PostgreSQL server of the PostgreSQL store's tests (a fresh database per test).
tests/postgres.sh
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast -- --test-threads=1
fi

# Every fuzz target under libFuzzer for a few seconds (fuzz/README.md; the corpus and every
# crash found so far are replayed by the tests above). Last: it rebuilds knoop's crates with
# coverage instrumentation. The seed is fixed, so every run of the suite walks the same inputs;
# the long runs (fuzz/README.md) explore new ones.
echo "== fuzzing (${KNOOP_FUZZ_SECONDS:-3} s per target)"
KNOOP_FUZZ_SEED="${KNOOP_FUZZ_SEED:-1}" fuzz/run.sh "${KNOOP_FUZZ_SECONDS:-3}"

echo "all tests passed"
