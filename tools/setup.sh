#!/usr/bin/env bash
# Installs every Debian package the project needs, then configures and
# builds it. Idempotent: run it as often as you like.
#
#   tools/setup.sh [build-dir] [extra cmake args...]
#
# Environment: MESH_SKIP_APT=1 skips the package step (offline rebuilds).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
shift || true

packages=(
  build-essential cmake ninja-build pkg-config
  libmsgpack-cxx-dev libboost-dev libssl-dev
  libspdlog-dev libyaml-cpp-dev nlohmann-json3-dev libcli11-dev
  libzmq3-dev cppzmq-dev libsodium-dev python3-zmq
  libgtest-dev libgmock-dev
  prometheus-cpp-dev ccache
  libcaf-dev
  serf iproute2 nftables procps systemd
  clang libclang-rt-14-dev
  pybind11-dev python3-dev python3-pytest python3-jsonschema
)

if [ "${MESH_SKIP_APT:-0}" != 1 ]; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing ${missing[*]}"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
fi

jobs=${MESH_JOBS:-$(nproc)}
# ccache, keyed on paths relative to the checkout, so that a rebuild in
# another clone of the same sources (CI's) reuses the compilations: a full
# build takes about 20 minutes on 2 cores. The other scripts use the same.
launcher=()
if command -v ccache >/dev/null; then
  export CCACHE_BASEDIR=$root CCACHE_NOHASHDIR=true
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" "$@" >/dev/null
cmake --build "$build" -j"$jobs"
