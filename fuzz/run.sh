#!/usr/bin/env bash
# Runs knoop's fuzz targets under libFuzzer (fuzz/README.md):
#
#   fuzz/run.sh [SECONDS] [TARGET...]   each target (default: all) for SECONDS (default 10)
#
# KNOOP_FUZZ_SEED fixes libFuzzer's random seed (tests/run.sh sets it, so the short run in the
# test suite walks the same inputs every time and a red build means a regression, not luck);
# unset, every run explores from a new seed (the long runs).
#
# Builds the `knoop-fuzz` driver with knoop's crates coverage-instrumented (fuzz/rustc-sancov;
# stable toolchain, no cargo-fuzz), then runs each target on a scratch copy of its committed
# corpus, so the corpus in git only grows when someone copies new inputs in on purpose. A crash
# stops the run with exit 1 and leaves the input in target/fuzz-artifacts/<target>-crash-*:
# fix it, then keep the input in fuzz/regressions/<target>/ (tests/corpus.rs replays it).
# Figures of each run (executions, coverage, corpus) go to target/fuzz-artifacts/<target>.log.
# CARGO_TARGET_DIR moves the build (a long run beside development: its own target directory, so
# the instrumented build and the ordinary one do not rebuild each other).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(ls fuzz/corpus)
fi

rocksdb_lib="$(tests/rocksdb.sh)"
if [ -n "$rocksdb_lib" ]; then
  export ROCKSDB_LIB_DIR="$rocksdb_lib" ROCKSDB_STATIC=1
fi
RUSTC_WORKSPACE_WRAPPER="$PWD/fuzz/rustc-sancov" \
  cargo build -q -p knoop-fuzz --features libfuzzer --bin knoop-fuzz
target="${CARGO_TARGET_DIR:-target}"
bin="$target/debug/knoop-fuzz"
out="$target/fuzz-artifacts"
mkdir -p "$out"

for t in "${targets[@]}"; do
  work="$(mktemp -d)"
  cp fuzz/corpus/"$t"/* "$work"/
  seed=()
  if [ -n "${KNOOP_FUZZ_SEED:-}" ]; then seed=(-seed="$KNOOP_FUZZ_SEED"); fi
  if ! KNOOP_FUZZ_TARGET="$t" "$bin" "$work" "${seed[@]}" -max_total_time="$secs" -max_len=65536 \
      -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 \
      -artifact_prefix="$out/$t-" >"$out/$t.log" 2>&1; then
    echo "fuzz target $t failed; its log: $out/$t.log" >&2
    grep -E "ERROR|panicked|Test unit written" "$out/$t.log" >&2 || tail -20 "$out/$t.log" >&2
    rm -rf "$work"
    exit 1
  fi
  runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/$t.log" | grep -o '[0-9]*$' || echo '?')"
  cov="$(grep -oE 'cov: [0-9]+' "$out/$t.log" | tail -1 | grep -oE '[0-9]+' || echo '?')"
  echo "fuzz $t: ${secs}s, $runs runs, coverage $cov, corpus $(ls "$work" | wc -l), no crash"
  rm -rf "$work"
done
