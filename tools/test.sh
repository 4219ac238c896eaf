#!/usr/bin/env bash
# Set up and run the test suite.
#
# Locally: a normal build, every test label but `slow`.
# In CI (CI=true) or with MESH_SANITIZE=1: the whole suite built with
# AddressSanitizer + UndefinedBehaviorSanitizer, slow tests included.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

sanitize=${MESH_SANITIZE:-0}
[ "${CI:-}" = true ] && sanitize=1
exclude="slow"
[ "${CI:-}" = true ] && exclude=""
[ -n "${MESH_TEST_EXCLUDE+x}" ] && exclude=$MESH_TEST_EXCLUDE

if [ "$sanitize" = 1 ]; then
  build=$root/build-asan
  "$root/tools/setup.sh" "$build" -DMESH_SANITIZE=ON
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
else
  build=$root/build
  "$root/tools/setup.sh" "$build"
fi

args=(--test-dir "$build" --output-on-failure --timeout 900 -j"${MESH_TEST_JOBS:-2}")
[ -n "$exclude" ] && args+=(-LE "$exclude")
exec ctest "${args[@]}"
