#!/usr/bin/env bash
# Set up and run the test suite.
#
# Locally: a normal build, every test label but `slow`.
# In CI (CI=true) or with MESH_SANITIZE=1: the whole suite built with
# AddressSanitizer + UndefinedBehaviorSanitizer, slow tests included.
# In CI (or with MESH_TSAN=1) the threaded parts — the transport, the SWIM
# driver and the Mesh facade — are also built and run under ThreadSanitizer.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

sanitize=${MESH_SANITIZE:-0}
tsan=${MESH_TSAN:-0}
if [ "${CI:-}" = true ]; then sanitize=1; tsan=1; fi
exclude="slow"
[ "${CI:-}" = true ] && exclude=""
[ -n "${MESH_TEST_EXCLUDE+x}" ] && exclude=$MESH_TEST_EXCLUDE
jobs=${MESH_TEST_JOBS:-2}

if [ "$sanitize" = 1 ]; then
  build=$root/build-asan
  "$root/tools/setup.sh" "$build" -DMESH_SANITIZE=ON
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
else
  build=$root/build
  "$root/tools/setup.sh" "$build"
fi

args=(--test-dir "$build" --output-on-failure --timeout 900 -j"$jobs")
[ -n "$exclude" ] && args+=(-LE "$exclude")
ctest "${args[@]}"

if [ "$tsan" = 1 ]; then
  # Only the targets with threads of their own; ctest -L picks their tests
  # (targets not built here have no tests discovered).
  tbuild=$root/build-tsan
  launcher=()
  if command -v ccache >/dev/null; then  # as tools/setup.sh
    export CCACHE_BASEDIR=$root CCACHE_NOHASHDIR=true
    launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  fi
  cmake -S "$root" -B "$tbuild" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMESH_TSAN=ON "${launcher[@]}" \
    -DMESH_BUILD_BENCH=OFF >/dev/null
  cmake --build "$tbuild" -j"${MESH_JOBS:-$(nproc)}" --target \
    mesh_transport_tests mesh_transport_process_tests transport_peer mesh_peer_link_tests \
    mesh_driver_integration_tests mesh_libmesh_tests mesh_mesh_cluster_tests mesh_config_tests \
    mesh_metrics_tests
  supp=$root/tests/transport/tsan.supp
  # libzmq is not built with TSan: its own hand-offs are invisible to it.
  topts=halt_on_error=1:second_deadlock_stack=1:ignore_noninstrumented_modules=1
  [ -f "$supp" ] && topts="$topts:suppressions=$supp"
  export TSAN_OPTIONS=${TSAN_OPTIONS:-$topts}
  ctest --test-dir "$tbuild" --output-on-failure --timeout 900 -j"$jobs" -L "transport|integration|unit" -LE slow \
    -E "^(examples|fuzz)\."  # plain add_test()s whose programs are not built here
fi

# --- fuzz stage -------------------------------------------------------------
# In CI (or with MESH_FUZZ_SECONDS set): build the libFuzzer targets with
# Clang (ASan + UBSan, build-fuzz/) and run each for MESH_FUZZ_SECONDS
# (default 30). The checked-in reproducers already ran above, as the ctests
# fuzz.<name>. See docs/fuzzing.md.
if [ "${CI:-}" = true ] || [ -n "${MESH_FUZZ_SECONDS:-}" ]; then
  fuzz_seconds=${MESH_FUZZ_SECONDS:-30}
  echo "test: fuzz stage, ${fuzz_seconds} s per target"
  "$root/tools/fuzz.sh" all "$fuzz_seconds"
fi
