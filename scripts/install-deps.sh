#!/usr/bin/env bash
# Installs the Debian packages kiln's tests and benchmarks use (the peers kiln is checked
# against, and tools the tests drive). Installs only what is missing.
set -euo pipefail
packages=(
  docker.io      # dockerd 20.10 + client: interop tests (docker save/load/run/build)
  podman         # podman 4.3: interop tests (podman save/load/run)
  skopeo         # reads kiln's store as an OCI layout
  umoci          # reads and unpacks kiln's store
  runc           # the OCI runtime podman and docker use here
  busybox-static # a 2 MB root filesystem for test images
  zstd           # zstd-compressed archives in tests
  passt          # pasta: user-mode networking and published ports for containers
  tini           # the static init `kiln run --init` mounts (as docker-init)
  docker-registry  # the CNCF distribution server: registry tests (pull/push/login/copy)
  apache2-utils  # htpasswd: the registry tests' basic-auth users
  mmdebstrap     # a Debian python3 base for the ML Dockerfile build test; the peer of `kiln base debian`
  curl           # fetches a real InRelease for the forged-index tests; the demo's HTTP requests
  python3        # uv, the Python installer kiln projects use, runs with a host interpreter
  faketime       # another day on the clock: a kiln.lock gives the same image any day
  debian-archive-keyring  # the archive keys `kiln base debian` verifies with (and the tests' other keyrings)
  pkg-config libseccomp-dev  # build dependencies of the container runtime
  golang-github-docker-docker-dev  # moby's default seccomp profile (default.json), which kiln's own is compared with
  gcc libc6-dev  # static probes the security tests compile and run in containers
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" iptables >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: installing the Rust toolchain with rustup" >&2
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt
fi
