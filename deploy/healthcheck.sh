#!/bin/bash
# Container health check: GET /healthz on this node's admin endpoint.
# Exit 0 when it answers 200, 1 otherwise (not running, leaving: 503).
#
# The address is the node's own effective configuration, taken from
# `mesh-node --check-config` (same environment, same JC_CONFIG file), so a
# deployment that moves the admin port needs no change here. An endpoint
# bound to every address (0.0.0.0, ::) is asked on loopback.
# Needs bash (for /dev/tcp), sed and mesh-node on PATH; nothing else.
set -euo pipefail

config=$(mesh-node --check-config) || exit 1
host=$(sed -n 's/^  "admin_host": "\(.*\)",$/\1/p' <<<"$config")
port=$(sed -n 's/^  "admin_port": \([0-9]*\),$/\1/p' <<<"$config")
if [ -z "$host" ] || [ -z "$port" ]; then
  echo "mesh-healthcheck: no admin_host/admin_port in mesh-node --check-config" >&2
  exit 1
fi
case $host in
  0.0.0.0) host=127.0.0.1 ;;
  ::) host=::1 ;;
esac

exec 3<>"/dev/tcp/$host/$port" || exit 1
printf 'GET /healthz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$host" >&3
status=""
read -r -t 4 status <&3 || true
exec 3<&-
case $status in
  "HTTP/1."[01]" 200 "*) exit 0 ;;
  *)
    echo "mesh-healthcheck: ${host}:${port}/healthz answered: ${status:-nothing}" >&2
    exit 1
    ;;
esac
