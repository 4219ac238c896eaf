#!/usr/bin/env bash
# The main job: set everything up, then simulate a 100-node SWIM cluster
# (3 seeds, 2 % packet loss, 3 nodes killed half way) and print its summary.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tools/setup.sh" "$root/build"
exec "$root/build/tests/sim/swim-sim" --nodes 100 --loss 0.02 --duration 300 --kill 3 --seed 1 "$@"
