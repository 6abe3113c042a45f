#!/usr/bin/env bash
# Builds rocksdb's C++ library once, as a unity build, for the test suite to link, and prints
# the directory that holds `librocksdb.a` (for ROCKSDB_LIB_DIR with ROCKSDB_STATIC=1, which the
# librocksdb-sys crate reads instead of compiling rocksdb itself).
#
# Why: the crate compiles rocksdb's ~340 C++ files one by one, each re-reading the same large
# headers: about 24 CPU-minutes, half of a cold build on 2 cores. RocksDB keeps its library
# sources compilable as one translation unit (its Makefile's `unity.a`); compiled that way, in a
# few chunks in parallel, the same sources take about 4 CPU-minutes. The sources, the source
# list and the defines are the crate's own (its `rocksdb_lib_sources.txt` and `build.rs` for
# Linux x86_64 with the `lz4` and `zstd` features, at opt-level 1 like the dev profile's
# dependencies), so the library is the one the crate would build.
#
# The result is cached under target/rocksdb/<crate version>-<hash of this script>/.
set -euo pipefail
cd "$(dirname "$0")/.."

# The defines below are the crate's for Linux on x86_64; elsewhere the crate builds rocksdb.
if [ "$(uname -s)" != Linux ] || [ "$(uname -m)" != x86_64 ]; then
  exit 0
fi

# Where cargo unpacked the crates: librocksdb-sys and the compression crates it links.
read -r rocksdb_dir rocksdb_version lz4_dir zstd_dir < <(
  cargo metadata --format-version 1 --locked --filter-platform "$(rustc -vV | sed -n "s/^host: //p")" | python3 -c '
import json, os, sys
m = json.load(sys.stdin)
def pkg(name):
    p = [p for p in m["packages"] if p["name"] == name]
    if len(p) != 1:
        sys.exit(f"expected one {name} in the dependency graph, found {len(p)}")
    return p[0]
r, l, z = pkg("librocksdb-sys"), pkg("lz4-sys"), pkg("zstd-sys")
d = lambda p: os.path.dirname(p["manifest_path"])
print(d(r), r["version"], d(l), d(z))
')

here_hash="$(sha256sum "$0" | cut -c1-12)"
out="$PWD/target/rocksdb/${rocksdb_version}-${here_hash}"
if [ -f "$out/librocksdb.a" ]; then
  echo "$out"
  exit 0
fi

work="$out.tmp"
rm -rf "$work"
mkdir -p "$work"

jobs="$(nproc 2>/dev/null || echo 2)"
chunks=$((jobs * 2))
[ "$chunks" -lt 4 ] && chunks=4
[ "$chunks" -gt 16 ] && chunks=16

# The crate's source list, without util/build_version.cc (the crate ships its own), dealt
# round-robin into chunks so that they take about the same time.
grep -v '^[[:space:]]*$' "$rocksdb_dir/rocksdb_lib_sources.txt" |
  sed 's/[[:space:]]*$//' |
  grep -vx 'util/build_version.cc' |
  awk -v n="$chunks" -v dir="$work" \
    '{ printf "#include \"rocksdb/%s\"\n", $0 > (dir "/unity_" (NR % n) ".cc") }'
echo '#include "build_version.cc"' >>"$work/unity_0.cc"

cxx="${CXX:-c++}"
flags=(
  -O1 -ffunction-sections -fdata-sections -fPIC -m64 -msse2 -std=c++20 -w
  -include cstdint
  -I "$rocksdb_dir/rocksdb/include" -I "$rocksdb_dir/rocksdb"
  -I "$rocksdb_dir/rocksdb/third-party/gtest-1.8.1/fused-src" -I "$rocksdb_dir"
  -I "$lz4_dir/liblz4/lib" -I "$zstd_dir/zstd/lib"
  -DLZ4=1 -DZSTD=1 -DNDEBUG=1 -DHAVE_ALIGNED_NEW -DHAVE_UINT128_EXTENSION
  -DOS_LINUX -DROCKSDB_PLATFORM_POSIX -DROCKSDB_LIB_IO_POSIX
  -DROCKSDB_SCHED_GETCPU_PRESENT -DROCKSDB_AUXV_GETAUXVAL_PRESENT
  -DROCKSDB_FALLOCATE_PRESENT -DROCKSDB_RANGESYNC_PRESENT
)
echo "building rocksdb ${rocksdb_version} as a unity build ($chunks chunks, $jobs at a time)" >&2
export cxx work
printf '%s\0' "${flags[@]}" >"$work/flags"
ls "$work"/unity_*.cc | xargs -P "$jobs" -I{} sh -c \
  'xargs -0 -a "$work/flags" "$cxx" -c "$1" -o "${1%.cc}.o" || exit 255' _ {}
ar rcs "$work/librocksdb.a" "$work"/unity_*.o
rm -f "$work"/unity_*.o
rm -rf "$out"
mv "$work" "$out"
echo "$out"
