#!/usr/bin/env bash
# Set up and run the test suite.
#
# Locally: a normal build, every test label but `slow`.
# In CI (CI=true) or with MESH_SANITIZE=1: the whole suite built with
# AddressSanitizer + UndefinedBehaviorSanitizer, slow tests included.
# In CI (or with MESH_TSAN=1) the threaded parts — the transport, the SWIM
# driver and the Mesh facade — are also built and run under ThreadSanitizer.
# In CI (or with MESH_RELEASE=1) everything is built in Release with GCC,
# whose examples, benchmark smoke runs, install test and Python package
# tests (pytest, python/) then run, and the
# libraries and programs are built in Release with Clang: the builds users
# make, so that a warning they would see stops CI first (see "release
# stage" below).
#
# Every build configured here for CI treats warnings as errors
# (MESH_WERROR=ON). The plain local build in build/ keeps the project's
# default (off) unless MESH_WERROR=ON is set: tools/demo.sh builds into the
# same directory, and flipping the flag would rebuild it from scratch.
#
# Each stage prints how long it took, and the run ends with a table of
# stage durations: CI has 2 cores and a 90-minute limit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

# --- stage timing -----------------------------------------------------------
stage_names=()
stage_secs=()
stage=""
stage_begin() {  # stage_begin <name>
  stage=$1
  stage_t0=$(date +%s)
  echo "test: --- $stage ---"
}
stage_end() {
  local d=$(($(date +%s) - stage_t0))
  stage_names+=("$stage")
  stage_secs+=("$d")
  echo "test: $stage took ${d} s"
  stage=""
}
print_durations() {  # on exit, also after a failure
  local rc=$? i total=0
  [ -n "$stage" ] && { stage_names+=("$stage (failed)"); stage_secs+=($(($(date +%s) - stage_t0))); }
  [ ${#stage_names[@]} -gt 0 ] || return "$rc"
  echo "test: stage durations"
  for i in "${!stage_names[@]}"; do
    printf 'test:   %-46s %5d s\n' "${stage_names[$i]}" "${stage_secs[$i]}"
    total=$((total + stage_secs[i]))
  done
  printf 'test:   %-46s %5d s\n' total "$total"
  return "$rc"
}
trap print_durations EXIT

sanitize=${MESH_SANITIZE:-0}
tsan=${MESH_TSAN:-0}
if [ "${CI:-}" = true ]; then sanitize=1; tsan=1; fi
exclude="slow"
[ "${CI:-}" = true ] && exclude=""
[ -n "${MESH_TEST_EXCLUDE+x}" ] && exclude=$MESH_TEST_EXCLUDE
jobs=${MESH_TEST_JOBS:-2}
release=${MESH_RELEASE:-0}
[ "${CI:-}" = true ] && release=1
werror=(-DMESH_WERROR="${MESH_WERROR:-ON}")

# Sanitizer builds compile at -O1 with line tables only (-g1): enough for
# the sanitizers' reports (file:line in every frame) and for tests to run
# at a good pace, and a test file compiles about 2.5 times faster than at
# RelWithDebInfo's -O2 -g (transport_test.cpp under ASan + UBSan: 30 s
# against 77 s). The build is most of CI's time.
san_flags=(-DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG")

launcher=()
if command -v ccache >/dev/null; then  # as tools/setup.sh
  export CCACHE_BASEDIR=$root CCACHE_NOHASHDIR=true
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi

if [ "$sanitize" = 1 ]; then
  stage_begin "ASan + UBSan build"
  build=$root/build-asan
  # The benchmarks are built and smoke-run in the Release stage only: they
  # measure optimised code, and under the sanitizers they would add a few
  # minutes of building and show nothing the tests do not.
  "$root/tools/setup.sh" "$build" -DMESH_SANITIZE=ON -DMESH_BUILD_BENCH=OFF "${san_flags[@]}" "${werror[@]}"
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
else
  stage_begin "build"
  build=$root/build
  local_werror=()
  [ -n "${MESH_WERROR:-}" ] && local_werror=("${werror[@]}")
  "$root/tools/setup.sh" "$build" "${local_werror[@]}"
fi
stage_end

stage_begin "test suite"
args=(--test-dir "$build" --output-on-failure --timeout 900 -j"$jobs")
[ -n "$exclude" ] && args+=(-LE "$exclude")
ctest "${args[@]}"
stage_end

if [ "$tsan" = 1 ]; then
  # Only the targets with threads of their own; ctest -L picks their tests
  # (targets not built here have no tests discovered).
  stage_begin "TSan build and tests"
  tbuild=$root/build-tsan
  cmake -S "$root" -B "$tbuild" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMESH_TSAN=ON "${san_flags[@]}" "${launcher[@]}" \
    -DMESH_BUILD_BENCH=OFF "${werror[@]}" >/dev/null
  cmake --build "$tbuild" -j"${MESH_JOBS:-$(nproc)}" --target \
    mesh_transport_tests mesh_transport_process_tests transport_peer mesh_peer_link_tests \
    mesh_driver_integration_tests mesh_libmesh_tests mesh_runtime_tests mesh_mesh_cluster_tests mesh_config_tests \
    mesh_trust_tests mesh_metrics_tests mesh_audit_tests mesh_conversation_tests
  supp=$root/tests/transport/tsan.supp
  # libzmq is not built with TSan: its own hand-offs are invisible to it.
  topts=halt_on_error=1:second_deadlock_stack=1:ignore_noninstrumented_modules=1
  [ -f "$supp" ] && topts="$topts:suppressions=$supp"
  export TSAN_OPTIONS=${TSAN_OPTIONS:-$topts}
  ctest --test-dir "$tbuild" --output-on-failure --timeout 900 -j"$jobs" -L "transport|integration|unit" -LE slow \
    -E "^(examples|fuzz|node)\."  # plain add_test()s whose programs are not built here
  stage_end
fi

# --- release stage ----------------------------------------------------------
# In CI (or with MESH_RELEASE=1): the builds users make, with -Werror, so a
# warning that only optimisation or the other compiler brings out (GCC's
# -Wrestrict at -O3, Clang's own checks) stops CI rather than a user.
#   GCC:   the libraries, programs, examples and benchmarks in Release
#          (build-release/), then the programs users run first: the
#          examples (the demo, the 3-process cluster demo), the benchmarks'
#          smoke runs (benchmarks mean something only optimised) and the
#          install test (a Release install, as a user's), and the Python
#          package (python/), whose pytest suites need the module and
#          these programs (ctest python.*). The C++ tests are
#          configured (that is where those runs are declared) but not built:
#          the sanitizer stages build and run them, and building them again
#          at -O3 would cost CI about 8 minutes for warnings in code users
#          do not ship (MESH_RELEASE_TESTS=1 builds them too).
#   Clang: the libraries and programs in Release (build-clang/); with
#          MESH_CLANG_TESTS=1 the tests and benchmarks too. They take more
#          than twice as long again to build as the libraries and programs,
#          and Clang's warnings in them would be mostly GCC's, so CI leaves
#          them out to stay well inside its time limit.
if [ "$release" = 1 ]; then
  stage_begin "GCC Release build"
  rbuild=$root/build-release
  cmake -S "$root" -B "$rbuild" -G Ninja -DCMAKE_BUILD_TYPE=Release "${werror[@]}" "${launcher[@]}" >/dev/null
  # Ninja's per-directory targets: each folder's libraries and programs.
  release_parts=(base/all swim/all transport/all libmesh/all tools/all examples/all bench/all)
  # The Python module (python/, on when pybind11 is installed, as setup.sh
  # does): its pytest suites run below, against these programs.
  python_tests=""
  if grep -q '^MESH_PYTHON:BOOL=ON' "$rbuild/CMakeCache.txt"; then
    release_parts+=(python/all)
    python_tests="python\.|"
  elif [ "${CI:-}" = true ]; then
    # In CI the Python tests are part of the run, never silently skipped.
    echo "test: the Python module is off: pybind11-dev and python3-dev not found (tools/setup.sh installs them)" >&2
    exit 1
  fi
  [ "${MESH_RELEASE_TESTS:-0}" = 1 ] && release_parts=(all)
  cmake --build "$rbuild" -j"${MESH_JOBS:-$(nproc)}" --target "${release_parts[@]}"
  stage_end

  stage_begin "GCC Release: examples, bench smoke, install, Python"
  ctest --test-dir "$rbuild" --output-on-failure --timeout 900 -j"$jobs" \
    -R "^(examples\.|bench_|${python_tests}install\.consumer$)"
  stage_end

  command -v clang++ >/dev/null || { echo "test: clang++ not found (tools/setup.sh installs it)" >&2; exit 1; }
  stage_begin "Clang Release build"
  cbuild=$root/build-clang
  clang_parts=(-DMESH_BUILD_TESTS=OFF -DMESH_BUILD_BENCH=OFF)
  [ "${MESH_CLANG_TESTS:-0}" = 1 ] && clang_parts=(-DMESH_BUILD_TESTS=ON -DMESH_BUILD_BENCH=ON)
  cmake -S "$root" -B "$cbuild" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++ \
    "${clang_parts[@]}" "${werror[@]}" "${launcher[@]}" >/dev/null
  cmake --build "$cbuild" -j"${MESH_JOBS:-$(nproc)}"
  stage_end
fi

# --- fuzz stage -------------------------------------------------------------
# In CI (or with MESH_FUZZ_SECONDS set): build the libFuzzer targets with
# Clang (ASan + UBSan, build-fuzz/) and run each for MESH_FUZZ_SECONDS
# (default 30). The checked-in reproducers already ran above, as the ctests
# fuzz.<name>. See docs/fuzzing.md.
if [ "${CI:-}" = true ] || [ -n "${MESH_FUZZ_SECONDS:-}" ]; then
  fuzz_seconds=${MESH_FUZZ_SECONDS:-30}
  stage_begin "fuzz (${fuzz_seconds} s per target)"
  "$root/tools/fuzz.sh" all "$fuzz_seconds"
  stage_end
fi
