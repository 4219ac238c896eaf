#!/usr/bin/env bash
# Runs an example program and checks its exit status and the lines that show
# each step happened.
#
#   examples_test.sh demo <mesh-demo binary>
#   examples_test.sh cluster <tools/cluster-demo.sh> <build dir>
set -uo pipefail

out=$(mktemp)
trap 'rm -f "$out"' EXIT
fail=0

expect() {  # expect <extended regex> <what it shows>
  if ! grep -Eq -- "$1" "$out"; then
    echo "examples_test: missing: $2 (no line matching /$1/)" >&2
    fail=1
  fi
}

case ${1:-} in
  demo)
    "$2" >"$out" 2>&1
    rc=$?
    cat "$out"
    [ "$rc" = 0 ] || { echo "examples_test: mesh-demo exited $rc" >&2; fail=1; }
    expect '^   list_roles\(\) +analyst, scout, validator$' "list_roles, without the caller's role"
    expect '^   discover\(role scout, first\) +scout-[0-9a-f]{8}, scout-[0-9a-f]{8}, scout-[0-9a-f]{8}$' "three scouts discovered"
    expect 'error: .*fastest' "an unknown strategy refused"
    expect '^\[demo\] scout-[0-9a-f]{8} → analyst-[0-9a-f]{8}: finding #1 .*(validated|rejected) by scout-[0-9a-f]{8} on node demo' \
      "a scout's finding validated by another scout and sent to the analyst"
    expect '^\[demo\] analyst-[0-9a-f]{8} ← scout-[0-9a-f]{8} \(node demo\): finding' "the analyst received it"
    expect '^   response from analyst-[0-9a-f]{8}: \{.*"findings":' "request/response"
    expect 'context carried back: \{"trace":"demo-4"\}' "the request's context carried back"
    expect '^   broadcast\(\) accepted 5 copies$' "broadcast, one copy per agent"
    expect 'check_inbox\(id, 3 s\): \{.*"valid":true' "ask_async / check_inbox"
    expect '^   all     : 4 answered' "request_all all"
    expect '^   first_k 2: 2 answered' "request_all first_k (exactly k, even when more arrive together)"
    expect '^   quorum  : [34] answered' "request_all quorum"
    expect '^demo finished in [0-9]+ ms: every call worked\.$' "the end"
    ;;
  cluster)
    bash "$2" "$3" >"$out" 2>&1
    rc=$?
    cat "$out"
    [ "$rc" = 0 ] || { echo "examples_test: cluster-demo.sh exited $rc" >&2; fail=1; }
    expect '^\[n3\] directory: \+ analyst-[0-9a-f]{8} \(analyst\) on node n1' "n3 discovered n1's analyst"
    expect '^\[n1\] directory: \+ scout-[0-9a-f]{8} \(scout\) on node n2' "n1 discovered n2's scouts"
    expect '^   analyst-[0-9a-f]{8} +analyst +n1 +local +active' "meshctl peers on n1 lists its own analyst"
    expect '^   scout-[0-9a-f]{8} +scout +n3 +remote +active' "meshctl peers on n1 lists n3's scout"
    expect '^   \{"analyst":"analyst-[0-9a-f]{8}",.*"node":"n1"' "meshctl request on n3 got n1's analyst's tally"
    expect '^\[n3\] scout-[0-9a-f]{8} → analyst-[0-9a-f]{8}: finding .*by scout-[0-9a-f]{8} on node n[12]\)$' \
      "n3's scout had its finding validated in another process"
    expect '^\[n1\] node n2 is DEAD' "n1 noticed n2's death"
    expect '^\[n3\] node n2 is DEAD' "n3 noticed n2's death"
    expect '^\[n1\] node n3 left' "n1 saw n3 leave gracefully"
    expect '== cluster-demo: done' "the end"
    ;;
  debate)
    # The turn limit stops the first run, the cost cap the second.
    "$2" --max-turns 6 >"$out" 2>&1
    rc=$?
    cat "$out"
    [ "$rc" = 0 ] || { echo "examples_test: mesh-debate exited $rc" >&2; fail=1; }
    expect '^pro: .*\(turn 1\)' "the first argument, turn 1"
    expect '^con: .*\(turn 6\)' "the sixth, the last the limit allows"
    expect '^moderator: the mesh stopped the debate: turn_limit$' "the seventh refused: turn_limit"
    expect '^clerk: recorded verdict "adopt, with limits" \(authority\)$' "the verdict, of authority"
    expect '"adopt governed conversations\?": 6 turns, .* refused \(turn_limit\)$' "the thread's record"
    "$2" --max-turns 50 --max-cost 0.1 >"$out" 2>&1
    rc=$?
    cat "$out"
    [ "$rc" = 0 ] || { echo "examples_test: mesh-debate exited $rc" >&2; fail=1; }
    expect '^moderator: the mesh stopped the debate: budget_exceeded$' "the cost cap"
    ;;
  *)
    echo "usage: examples_test.sh demo <mesh-demo> | debate <mesh-debate> | cluster <cluster-demo.sh> <build dir>" >&2
    exit 2
    ;;
esac
exit "$fail"
