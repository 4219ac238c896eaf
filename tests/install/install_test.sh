#!/usr/bin/env bash
# Installs a build into a temporary prefix and uses it from outside, as a
# user would:
#   1. cmake --install <build> --prefix <tmp>: headers, the archives,
#      mesh-node, meshctl, lib/cmake/mesh/ and mesh.pc are there, and no
#      installed text file names the source or build tree;
#   2. consumer/ (find_package(mesh CONFIG), mesh::mesh) configured and built
#      out of tree against <tmp> only, run: its agent answers;
#   3. consumer/main.cpp built with `pkg-config --cflags --libs mesh` against
#      <tmp>, run: the same answer.
# The package's sanitizer link flags (mesh.pc, meshTargets.cmake) are
# exactly <sanitizer flags>: none for a plain build.
# The prefix and both consumer builds live in one temporary directory,
# removed on exit.
#
#   install_test.sh <build dir> <consumer source dir> <c++ compiler> <cmake generator>
#                   <sanitizer flags>
set -euo pipefail

build=$1
consumer=$2
cxx=$3
generator=$4
sanitizers=${5:-}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mesh-install-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

fail() {
  echo "install_test: $*" >&2
  exit 1
}

step() {
  echo "install_test: $*"
}

# A built program's stdout must say what consumer/main.cpp promises.
check_answer() {  # check_answer <what> <program>
  local out rc=0
  out=$("$2" 2>&1) || rc=$?
  echo "$out"
  [ "$rc" = 0 ] || fail "$1 exited $rc"
  grep -Eq '^answer: \{"twice":42\} from doubler-1$' <<<"$out" \
    || fail "$1 printed no 'answer: {\"twice\":42} from doubler-1'"
}

step "cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" \
  || { cat "$tmp/install.log"; fail "cmake --install failed"; }

for f in bin/mesh-node bin/meshctl include/mesh/mesh.hpp include/mesh/swim/node.hpp \
         include/mesh/transport/transport.hpp; do
  [ -e "$prefix/$f" ] || fail "$f was not installed"
done
config=$(find "$prefix" -name meshConfig.cmake -print -quit)
pc=$(find "$prefix" -name mesh.pc -print -quit)
[ -n "$config" ] || fail "meshConfig.cmake was not installed"
[ -n "$pc" ] || fail "mesh.pc was not installed"
[ -e "$(dirname "$config")/meshConfigVersion.cmake" ] || fail "meshConfigVersion.cmake was not installed"
[ -n "$(find "$prefix" -name 'libmesh_mesh.*' -print -quit)" ] || fail "libmesh_mesh was not installed"
# A path into the build or source tree would make the package work here and
# nowhere else. (grep -I: text files only; the archives' debug info may
# name the sources.)
src=$(cd "$consumer/../../.." && pwd)
if leaks=$(grep -rIlF -e "$(cd "$build" && pwd)" -e "$src" "$prefix"); then
  fail "installed files name the build or source tree: $leaks"
fi
if [ -z "$sanitizers" ]; then
  ! grep -q -e -fsanitize "$pc" "$(dirname "$config")/meshTargets.cmake" \
    || fail "a plain build's package names a -fsanitize flag"
else
  for flag in $sanitizers; do
    grep -Eq "^Libs: .* $flag( |\$)" "$pc" || fail "mesh.pc's Libs lack $flag"
    grep -qF -- "$flag" "$(dirname "$config")/meshTargets.cmake" \
      || fail "meshTargets.cmake lacks $flag"
  done
fi
"$prefix/bin/mesh-node" --version >/dev/null || fail "the installed mesh-node --version failed"
"$prefix/bin/meshctl" --help >/dev/null || fail "the installed meshctl --help failed"
# deploy/systemd/mesh-node.service names this file as its Documentation=.
[ -f "$prefix/share/doc/mesh/operations.md" ] || fail "share/doc/mesh/operations.md is not installed"

step "consumer: find_package(mesh CONFIG) against $prefix"
# CMAKE_FIND_USE_PACKAGE_REGISTRY=OFF and CMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF:
# only the prefix given, never a build tree someone registered.
cmake -S "$consumer" -B "$tmp/consumer-build" -G "$generator" \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF \
  >"$tmp/configure.log" 2>&1 || { cat "$tmp/configure.log"; fail "the consumer did not configure"; }
grep -F "consumer: mesh " "$tmp/configure.log"
grep -qF "from $prefix/" "$tmp/configure.log" || fail "find_package(mesh) did not use $prefix"
cmake --build "$tmp/consumer-build" >"$tmp/build.log" 2>&1 \
  || { cat "$tmp/build.log"; fail "the consumer did not build"; }
check_answer "the CMake consumer" "$tmp/consumer-build/consumer"

step "consumer: pkg-config --cflags --libs mesh against $prefix"
export PKG_CONFIG_PATH=$(dirname "$pc")
flags=$(pkg-config --cflags --libs mesh) || fail "pkg-config --cflags --libs mesh failed"
echo "pkg-config: $flags"
[ "$(realpath -m "$(pkg-config --variable=includedir mesh)")" = "$(realpath "$prefix/include")" ] \
  || fail "mesh.pc's includedir is not $prefix/include"
# shellcheck disable=SC2086  # the flags are words
"$cxx" -std=c++20 "$consumer/main.cpp" -o "$tmp/consumer-pc" $flags >"$tmp/pc-build.log" 2>&1 \
  || { cat "$tmp/pc-build.log"; fail "the pkg-config consumer did not build"; }
check_answer "the pkg-config consumer" "$tmp/consumer-pc"

step "ok"
