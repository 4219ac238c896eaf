#!/usr/bin/env bash
# The main job: set everything up, then run the agent demo (examples/demo.cpp):
# one process, no configuration, six agents that discover each other and talk
# through every PeerClient call. About five seconds; exit 0 when all worked.
# For a three-process cluster with a node killed: tools/cluster-demo.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tools/setup.sh" "$root/build"
exec "$root/build/examples/mesh-demo"
