#!/usr/bin/env bash
# Starts a private Docker daemon for kiln's interoperability tests, unless one already
# answers on the socket. Debian's dockerd, no bridge and no iptables (these machines have
# neither), state under /tmp so it never touches a system Docker.
# Prints the DOCKER_HOST to use.
set -euo pipefail
sock=${KILN_TEST_DOCKER_SOCK:-/tmp/kiln-docker.sock}
state=${KILN_TEST_DOCKER_STATE:-/tmp/kiln-dockerd}
export DOCKER_HOST=unix://$sock
if /usr/bin/docker info >/dev/null 2>&1; then
  echo "$DOCKER_HOST"
  exit 0
fi
mkdir -p "$state"
setsid $(command -v dockerd || echo /usr/sbin/dockerd) --host "$DOCKER_HOST" --data-root "$state/data" --exec-root "$state/exec" \
  --pidfile "$state/dockerd.pid" --bridge=none --iptables=false --ip-forward=false \
  >"$state/dockerd.log" 2>&1 </dev/null &
for _ in $(seq 1 120); do
  if /usr/bin/docker info >/dev/null 2>&1; then
    echo "$DOCKER_HOST"
    exit 0
  fi
  sleep 0.5
done
echo "dockerd did not start; its log:" >&2
tail -n 30 "$state/dockerd.log" >&2
exit 1
