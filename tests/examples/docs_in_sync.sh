#!/usr/bin/env bash
# The complete programs quoted in the docs are the files themselves: each
# block between "<!-- NAME begin -->" and "<!-- NAME end -->" (its ``` fence
# lines dropped) must equal examples/NAME byte for byte.
# Usage: docs_in_sync.sh SOURCE_DIR
set -euo pipefail
src=$1
status=0
check() {  # doc name
  local doc=$src/$1 name=$2
  if ! grep -q "<!-- $name begin -->" "$doc"; then
    echo "$1: no quoted $name (marker <!-- $name begin --> missing)"; status=1; return
  fi
  if ! diff -u "$src/examples/$name" \
       <(awk -v b="<!-- $name begin -->" -v e="<!-- $name end -->" \
           '$0 == b {on = 1; next} $0 == e {on = 0} on && !/^```/' "$doc") \
       --label "examples/$name" --label "$1 (quoted)"; then
    echo "$1: the quoted $name differs from examples/$name (diff above)"; status=1
  fi
}
check docs/peerclient.md minimal.cpp
check examples/README.md minimal.cpp
check docs/conversations.md debate.cpp
[ "$status" = 0 ] && echo "docs quote examples/minimal.cpp and examples/debate.cpp exactly"
exit "$status"
