#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run): installs the peers, starts a
# private dockerd, checks formatting and lints, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH:/usr/sbin:/sbin"
scripts/install-deps.sh

state=${KILN_TEST_DOCKER_STATE:-/tmp/kiln-dockerd}
started_dockerd=
if ! DOCKER_HOST=unix://${KILN_TEST_DOCKER_SOCK:-/tmp/kiln-docker.sock} /usr/bin/docker info >/dev/null 2>&1; then
  started_dockerd=1
fi
scripts/start-dockerd.sh >/dev/null
stop_dockerd() {
  if [ -n "$started_dockerd" ] && [ -f "$state/dockerd.pid" ]; then
    kill "$(cat "$state/dockerd.pid")" 2>/dev/null || true
  fi
}
trap stop_dockerd EXIT

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
