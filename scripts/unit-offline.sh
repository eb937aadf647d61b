#!/usr/bin/env bash
# Runs the unit project where no service exists: a new network namespace (loopback up, nothing
# listening, so 127.0.0.1:5672 and :6379 refuse) and a mount namespace in which /usr/bin/python3*
# is /bin/false. Needs root (or unprivileged user namespaces). Usage: scripts/unit-offline.sh [vitest args]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec unshare --net --mount -- bash -c '
  set -euo pipefail
  ip link set lo up
  for p in /usr/bin/python3 /usr/bin/python3.[0-9]*; do
    case "$p" in *-config) ;; *) [ -e "$p" ] && mount --bind /bin/false "$p" ;; esac
  done
  if (echo > /dev/tcp/127.0.0.1/5672) 2>/dev/null; then echo "RabbitMQ is reachable" >&2; exit 1; fi
  if (echo > /dev/tcp/127.0.0.1/6379) 2>/dev/null; then echo "Redis is reachable" >&2; exit 1; fi
  if /usr/bin/python3 -c "" 2>/dev/null; then echo "python3 runs" >&2; exit 1; fi
  echo "offline: 127.0.0.1:5672 and :6379 refuse, /usr/bin/python3 is /bin/false" >&2
  exec npx vitest run --project unit "$@"' bash "$@"
