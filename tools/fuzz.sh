#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with Clang (ASan + UBSan) and
# runs them. See docs/fuzzing.md.
#
#   tools/fuzz.sh NAME SECONDS [libFuzzer args...]   one target
#   tools/fuzz.sh all SECONDS [libFuzzer args...]    every target, in turn
#   tools/fuzz.sh list                               the target names
#
# Each run starts from the checked-in seeds (tests/fuzz/corpus/NAME) plus
# the reproducers (tests/fuzz/regressions/NAME), in a working corpus under
# the build directory that grows from run to run; nothing is written into
# the source tree. A crash, leak or timeout stops the target, prints the
# path of the input that caused it, and makes the script exit non-zero
# (with `all`, after the other targets have run).
#
# Environment: MESH_FUZZ_BUILD (default build-fuzz), MESH_JOBS (build
# parallelism, default 2), MESH_FUZZ_RSS_MB (default 2048),
# MESH_FUZZ_TIMEOUT (seconds one input may take, default 25).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MESH_FUZZ_BUILD:-$root/build-fuzz}
jobs=${MESH_JOBS:-2}
rss_mb=${MESH_FUZZ_RSS_MB:-2048}
timeout_s=${MESH_FUZZ_TIMEOUT:-25}

usage() {
  echo "usage: $0 NAME|all SECONDS [libFuzzer args...]   (or: $0 list)" >&2
  exit 2
}

targets=()
for f in "$root"/tests/fuzz/*_fuzz.cpp; do
  n=$(basename "$f" _fuzz.cpp)
  targets+=("$n")
done

[ $# -ge 1 ] || usage
if [ "$1" = list ]; then
  printf '%s\n' "${targets[@]}"
  exit 0
fi
[ $# -ge 2 ] || usage
name=$1
seconds=$2
shift 2
case $seconds in '' | *[!0-9]*) usage ;; esac

if [ "$name" = all ]; then
  run=("${targets[@]}")
else
  run=()
  for t in "${targets[@]}"; do [ "$t" = "$name" ] && run=("$t"); done
  if [ ${#run[@]} -eq 0 ]; then
    echo "fuzz: no target '$name' (have: ${targets[*]})" >&2
    exit 2
  fi
fi

# --- build ------------------------------------------------------------------
command -v clang++ >/dev/null || { echo "fuzz: clang++ not found (tools/setup.sh installs it)" >&2; exit 1; }
launcher=()
if command -v ccache >/dev/null; then  # as tools/setup.sh
  export CCACHE_BASEDIR=$root CCACHE_NOHASHDIR=true
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
if [ ! -f "$build/build.ninja" ]; then
  # -O1 -g1 as tools/test.sh's sanitizer builds: the build is most of the
  # fuzz stage's time.
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
    -DCMAKE_CXX_COMPILER=clang++ -DMESH_FUZZ=ON -DMESH_BUILD_TESTS=OFF -DMESH_BUILD_BENCH=OFF \
    -DMESH_WERROR=OFF "${launcher[@]}" >/dev/null
fi
build_targets=()
for t in "${run[@]}"; do build_targets+=("fuzz_$t"); done
start=$(date +%s)
cmake --build "$build" -j"$jobs" --target "${build_targets[@]}"
echo "fuzz: build took $(($(date +%s) - start)) s"

# --- run --------------------------------------------------------------------
# A timeout is a finding too (a stall); leaks are reported by ASan.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=()
summary=()
for t in "${run[@]}"; do
  work=$build/fuzz-work/$t
  mkdir -p "$work/corpus" "$work/artifacts"
  cp -n "$root/tests/fuzz/corpus/$t"/* "$work/corpus/" 2>/dev/null || true
  inputs=("$work/corpus" "$root/tests/fuzz/corpus/$t")
  [ -d "$root/tests/fuzz/regressions/$t" ] && inputs+=("$root/tests/fuzz/regressions/$t")
  log=$work/last.log
  echo "fuzz: $t for ${seconds} s (log: $log)"
  set +e
  "$build/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -rss_limit_mb="$rss_mb" \
    -timeout="$timeout_s" -artifact_prefix="$work/artifacts/" -print_final_stats=1 \
    "$@" "${inputs[@]}" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  if [ $rc -eq 0 ]; then
    line="$t: ${execs:-?} executions, ${rate:-?}/s, coverage ${cov:-?} edges: clean"
  else
    crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    tail -n 40 "$log" >&2
    line="$t: FAILED (exit $rc) after ${execs:-?} executions; input: ${crash:-see $log}"
    failed+=("$t")
  fi
  echo "fuzz: $line"
  summary+=("$line")
done

if [ ${#run[@]} -gt 1 ]; then
  echo "fuzz: summary"
  printf '  %s\n' "${summary[@]}"
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failed: ${failed[*]} (reproduce: $build/tests/fuzz/fuzz_NAME <input>;" \
    "check the input in under tests/fuzz/regressions/NAME/)" >&2
  exit 1
fi
