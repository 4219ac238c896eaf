#!/usr/bin/env bash
# Regenerates the swim-sim figures of docs/simulator.md: N = 10, 100, 1000
# at 0 and 10 % loss, one kill each, as a Markdown table (plus the raw JSON
# lines on stderr). Takes a few minutes on one core.
#
#   tests/sim/sim_table.sh [path/to/swim-sim] [duration-s] [seed]
set -euo pipefail
sim=${1:-build/tests/sim/swim-sim}
duration=${2:-600}
seed=${3:-1}

echo "| N | loss | converge s | false deaths | detect p50 / max s | pkt/node/s | B/node/s | stream B/node/s | suspect events | refutations | decode errors | susp. min / max s | retransmit limit | push/pull s | wall s | cpu s | virtual/wall | virtual/cpu |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for n in 10 100 1000; do
  for loss in 0 0.1; do
    json=$("$sim" --nodes "$n" --loss "$loss" --duration "$duration" --seed "$seed" --kill 1 --json)
    echo "$json" >&2
    python3 - "$json" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
f = lambda v, p=1: "-" if v is None else f"{v:.{p}f}"
print(f"| {r['nodes']} | {r['loss']*100:.0f} % | {f(r['converge_s'])} | {r['false_deaths']} | "
      f"{f(r['detect_s_p50'])} / {f(r['detect_s_max'])} | {r['packets_per_node_per_s']:.2f} | "
      f"{r['bytes_per_node_per_s']:.0f} | {r['stream_bytes_per_node_per_s']:.0f} | {r['suspect_events']} | "
      f"{r['refutations']} | {r['decode_errors']} | {r['suspicion_min_s']:.0f} / {r['suspicion_max_s']:.0f} | "
      f"{r['retransmit_limit']} | {r['push_pull_interval_s']:.0f} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['speedup']:.0f} | "
      f"{(r['virtual_s'] / r['cpu_s']) if r['cpu_s'] > 0 else float('inf'):.0f} |")
PY
  done
done
