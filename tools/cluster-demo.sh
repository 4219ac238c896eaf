#!/usr/bin/env bash
# A three-node cluster on this machine, to watch agents find each other
# across processes, talk, and notice a node dying.
#
#   tools/cluster-demo.sh [build-dir]      (default: $MESH_BUILD_DIR, else build/)
#
# What it does, in under a minute:
#   1. starts three `mesh-agents` processes on 127.0.0.1 (P2P_ENABLED=true,
#      one SWIM port each, n2 and n3 join through n1 as their seed):
#        n1: analyst, scout     n2: scout, scout     n3: scout
#   2. waits until every node's directory lists the other nodes' agents
#      (each host prints "directory: + <agent> on node <n>" as it learns),
#      and asks n1's admin endpoint with `meshctl peers` (every agent of the
#      cluster, local and remote);
#   3. lets the scouts work for a few seconds: each finding is validated by
#      a scout that may live in another process, then sent to the analyst;
#      `meshctl request analyst '{"kind":"summary"}'` on n3 asks n1's
#      analyst for its tally (sent by n3's node client, "$node");
#   4. kills n2 with SIGKILL (no goodbye) and waits until n1 and n3 print
#      "node n2 is DEAD" and drop its agents from their directories;
#   5. stops n1 and n3 with SIGTERM (a graceful leave) and cleans up.
# Every process it started is killed on exit, whatever happens.
# Ports: SWIM $MESH_DEMO_PORT .. +2 (default: a random base in 20000-29999,
# another one if n1 cannot bind it), ZeroMQ the same + 1000, admin + 2000.
# Exit 0 when every step was seen and n1 and n3 exited cleanly after
# SIGTERM, 1 otherwise, 2 when mesh-agents or meshctl is not built.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-${MESH_BUILD_DIR:-$root/build}}
bin="$build/examples/mesh-agents"
meshctl="$build/tools/meshctl"
for b in "$bin" "$meshctl"; do
  if [ ! -x "$b" ]; then
    echo "cluster-demo: $b is not built (run tools/setup.sh $build, or pass the build directory)" >&2
    exit 2
  fi
done

# Below Linux's ephemeral range (32768-), where outgoing connections take ports.
base=${MESH_DEMO_PORT:-$((20000 + RANDOM % 10000))}
work=$(mktemp -d "${TMPDIR:-/tmp}/cluster-demo.XXXXXX")
declare -A pid=()
tail_pid=""

cleanup() {
  {
    for n in "${!pid[@]}"; do kill -9 "${pid[$n]}" || true; done
    for n in "${!pid[@]}"; do wait "${pid[$n]}" || true; done
    if [ -n "$tail_pid" ]; then kill "$tail_pid" || true; wait "$tail_pid" || true; fi
  } 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n== %s\n' "$*"; }

# start <name> <index> <agents> [seed]
start() {
  local name=$1 i=$2 agents=$3 seed=${4:-}
  local seeds=()
  [ -z "$seed" ] || seeds=(JC_SEED_NODES="$seed")
  # The `local` profile (memberlist's DefaultLocalConfig) detects a death in seconds.
  # JC_LOG_LEVEL=warn: the hosts' own lines say what SWIM saw, more briefly.
  env P2P_ENABLED=true JC_NODE_NAME="$name" JC_SWIM_HOST=127.0.0.1 JC_PROFILE=local JC_LOG_LEVEL=warn \
      JC_SWIM_PORT=$((base + i)) JC_ZMQ_PORT=$((base + 1000 + i)) JC_ADMIN_PORT=$((base + 2000 + i)) \
      "${seeds[@]}" \
      "$bin" --agents "$agents" --tick 1.5 >"$work/$name.log" 2>&1 &
  pid[$name]=$!
}

# wait_for <seconds> <description> <file> <extended regex> [<file> <regex>]...
wait_for() {
  local limit=$1 what=$2; shift 2
  local deadline=$((SECONDS + limit))
  while :; do
    local all=1 args=("$@")
    for ((k = 0; k < ${#args[@]}; k += 2)); do
      grep -Eq -- "${args[k + 1]}" "$work/${args[k]}.log" 2>/dev/null || { all=0; break; }
    done
    [ "$all" = 1 ] && return 0
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "cluster-demo: FAILED: $what (not seen within ${limit} s)" >&2
      return 1
    fi
    sleep 0.2
  done
}

# n1 first; when its ports are taken (it exits), try another base.
for attempt in 1 2 3; do
  start n1 0 analyst,scout
  for _ in $(seq 50); do
    grep -q 'up: SWIM' "$work/n1.log" && break 2
    kill -0 "${pid[n1]}" 2>/dev/null || break
    sleep 0.2
  done
  { kill -9 "${pid[n1]}"; wait "${pid[n1]}"; } 2>/dev/null || true
  echo "cluster-demo: n1 did not start on port $base: $(tail -n 1 "$work/n1.log")" >&2
  [ -z "${MESH_DEMO_PORT:-}" ] && [ "$attempt" -lt 3 ] || exit 1
  base=$((20000 + RANDOM % 10000))
done

say "n1 is up (SWIM 127.0.0.1:$base); starting n2 and n3 with seed 127.0.0.1:$base"
touch "$work/n2.log" "$work/n3.log"
tail -q -n +1 -f "$work/n1.log" "$work/n2.log" "$work/n3.log" &
tail_pid=$!
start n2 1 scout,scout "127.0.0.1:$base"
start n3 2 scout "127.0.0.1:$base"

# Every node learns of the other nodes' agents.
wait_for 30 "the nodes discovered each other's agents" \
  n1 'on node n2' n1 'on node n3' n2 'on node n1' n2 'on node n3' n3 'on node n1' n3 'on node n2'
sleep 1
say "every node lists the others' agents: meshctl peers --admin 127.0.0.1:$((base + 2000)) (n1's admin endpoint)"
"$meshctl" peers --admin "127.0.0.1:$((base + 2000))" | sed 's/^/   /' || { echo "cluster-demo: FAILED: meshctl peers" >&2; exit 1; }
say "the scouts work across processes for 5 s"
sleep 5
wait_for 10 "a finding reached the analyst on n1 from another node" n1 '← scout-[0-9a-f]+ \(node n[23]\): finding'
say "meshctl request analyst '{\"kind\":\"summary\"}' --admin 127.0.0.1:$((base + 2002)) (n3 asks n1's analyst)"
"$meshctl" request analyst '{"kind":"summary"}' --admin "127.0.0.1:$((base + 2002))" | sed 's/^/   /' ||
  { echo "cluster-demo: FAILED: meshctl request" >&2; exit 1; }

started_kill=$SECONDS
say "kill -9 n2 (pid ${pid[n2]}): no goodbye, SWIM must notice"
# (the braces keep bash's "Killed" job notice off the terminal)
{ kill -9 "${pid[n2]}"; wait "${pid[n2]}"; } 2>/dev/null || true
unset 'pid[n2]'
wait_for 40 "n1 and n3 noticed that n2 died" n1 'node n2 is DEAD' n3 'node n2 is DEAD'
say "n1 and n3 declared n2 dead after $((SECONDS - started_kill)) s and dropped its agents; 3 s more without it"
sleep 3

say "stopping n1 and n3 (SIGTERM: a graceful leave)"
status=0
stop_node() {  # SIGTERM, then its exit status must be 0 (a clean leave)
  kill -TERM "${pid[$1]}"
  local rc=0
  wait "${pid[$1]}" || rc=$?
  unset "pid[$1]"
  [ "$rc" = 0 ] || { echo "cluster-demo: $1 exited $rc after SIGTERM" >&2; status=1; }
}
stop_node n3
wait_for 10 "n1 saw n3 leave" n1 'node n3 left'
stop_node n1
sleep 0.3  # let tail print the last lines
say "cluster-demo: done"
exit "$status"
