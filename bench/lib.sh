# Shared helpers for kiln's benchmarks. Sourced by bench/run.sh and bench/scenarios/*.sh.
# shellcheck shell=bash

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$BENCH_DIR/.." && pwd)
OUT_DIR=${KILN_BENCH_OUT:-$BENCH_DIR/out}
CACHE=${KILN_BENCH_CACHE:-/var/tmp/kiln-bench}
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
KILN_BIN=${KILN_BIN:-$TARGET_DIR/release/kiln}
# hyperfine's runs per command; KILN_BENCH_RUNS=1 for a quick smoke run.
RUNS=${KILN_BENCH_RUNS:-5}
WARMUP=${KILN_BENCH_WARMUP:-1}
SUMMARY=$OUT_DIR/summary.tsv
# KILN_BASELINE_BIN: another kiln binary (built from an earlier commit, e.g. with `git worktree`)
# timed in the same hyperfine runs as kiln by the run, build, load-save and registry scenarios,
# so that a change shows its figures before and after under the same machine state.
BASELINE_BIN=${KILN_BASELINE_BIN:-}
# Debian's docker client: the `docker` first on PATH may be a newer one.
DOCKER_CLI=/usr/bin/docker

mkdir -p "$OUT_DIR" "$CACHE"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
note() { printf '    %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Release build of the kiln CLI and of the examples the scenarios use (once per run.sh).
build_release() {
  if [[ -n ${KILN_BENCH_NO_BUILD:-} ]]; then
    [[ -x $KILN_BIN ]] || die "KILN_BENCH_NO_BUILD is set but $KILN_BIN is missing"
    return 0
  fi
  [[ -n ${_KILN_BENCH_BUILT:-} ]] && return 0
  log "cargo build --release -p kiln, then -p kiln-layer --example throughput (waits on the cargo lock if someone else builds)"
  (cd "$REPO_ROOT" && cargo build --release -p kiln --bin kiln &&
    cargo build --release -p kiln-layer --example throughput) >&2 ||
    die "release build failed"
  export _KILN_BENCH_BUILT=1
}

# Installs the Debian packages of the peers, only those whose command is missing.
# Pairs of package:command.
PEERS=(hyperfine:hyperfine podman:podman buildah:buildah skopeo:skopeo docker.io:/usr/bin/docker docker-registry:docker-registry
  busybox-static:busybox zstd:zstd pigz:pigz python3:python3 mmdebstrap:mmdebstrap)
ensure_peers() {
  local missing=() pair pkg cmd
  for pair in "${PEERS[@]}"; do
    pkg=${pair%%:*}
    cmd=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return 0
  log "installing missing peers: ${missing[*]}"
  if [[ $(id -u) != 0 ]]; then
    die "missing ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# Podman and buildah on storage of their own under the cache: benches never see a user's images.
# PODMAN is a string for hyperfine command lines; bpodman a function for the scripts.
PODMAN_DRIVER=${KILN_BENCH_PODMAN_DRIVER:-overlay}
PODMAN="podman --root $CACHE/podman/root --runroot $CACHE/podman/runroot --tmpdir $CACHE/podman/tmp --storage-driver $PODMAN_DRIVER --cgroup-manager cgroupfs --events-backend file --runtime runc"
bpodman() { $PODMAN "$@"; }
BUILDAH="buildah --root $CACHE/buildah/root --runroot $CACHE/buildah/runroot --storage-driver vfs"
bbuildah() { $BUILDAH "$@"; }

# Starts (or reuses) the private dockerd of scripts/start-dockerd.sh and exports DOCKER_HOST.
# Returns 1, with a note, when it cannot: docker results are extra information only.
HAVE_DOCKER=
start_docker() {
  [[ -n ${KILN_BENCH_NO_DOCKER:-} ]] && { note "KILN_BENCH_NO_DOCKER set: docker skipped"; return 1; }
  [[ -n $HAVE_DOCKER ]] && return 0
  local host
  if [[ -x $DOCKER_CLI ]] && host=$("$REPO_ROOT/scripts/start-dockerd.sh" 2>"$OUT_DIR/dockerd-start.log"); then
    export DOCKER_HOST=$host
    HAVE_DOCKER=1
    note "docker: $($DOCKER_CLI version --format '{{.Server.Version}}' 2>/dev/null) at $DOCKER_HOST"
    return 0
  fi
  note "dockerd could not start (see $OUT_DIR/dockerd-start.log): docker skipped"
  return 1
}

# hyperfine NAME ARGS...: runs hyperfine writing $OUT_DIR/NAME.json and NAME.md.
hf() {
  local name=$1
  shift
  hyperfine --style basic --export-json "$OUT_DIR/$name.json" --export-markdown "$OUT_DIR/$name.md" "$@" >&2
}

# hf_median NAME COMMAND_NAME: median seconds of one command in $OUT_DIR/NAME.json ("" if absent).
hf_median() {
  python3 - "$OUT_DIR/$1.json" "$2" <<'EOF'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    if r["command"] == sys.argv[2]:
        print(f'{r["median"]:.6f}')
EOF
}

# summary_add SCENARIO KILN PEER RATIO TARGET MET: one row of the final table.
summary_add() {
  local IFS=$'\t'
  echo "$*" >>"$SUMMARY"
}

# compare_times SCENARIO KILN_S PEER_NAME PEER_S FACTOR: adds a row "kiln Nx faster/slower than PEER",
# met when PEER_S / KILN_S >= FACTOR. An empty PEER_S adds an informative row without a target.
# compare_baseline SCENARIO KILN_S BASELINE_S: kiln against the baseline binary (target: within
# 10%, the noise of these 2-core machines).
compare_baseline() {
  [[ -n $BASELINE_BIN ]] || return 0
  python3 - "$1" "$2" "$3" "$(basename "$BASELINE_BIN")" >>"$SUMMARY" <<'EOF'
import sys
scenario, new_s, base_s, name = sys.argv[1:]
if not new_s or not base_s:
    print("\t".join([scenario, f"{new_s or '-'} s", f"{name} {base_s or '-'} s", "-", "-", "n/a"]))
    sys.exit()
n, b = float(new_s), float(base_s)
t = lambda s: f"{s * 1000:.1f} ms" if s < 1 else f"{s:.3f} s"
print("\t".join([scenario, t(n), f"{name} {t(b)}", f"{n / b:.2f}x the baseline", "<= 1.10x", "yes" if n / b <= 1.10 else "NO"]))
EOF
}
compare_times() {
  local scenario=$1 kiln_s=$2 peer=$3 peer_s=$4 factor=$5
  python3 - "$scenario" "$kiln_s" "$peer" "$peer_s" "$factor" >>"$SUMMARY" <<'EOF'
import sys
scenario, kiln_s, peer, peer_s, factor = sys.argv[1:]
if not kiln_s or not peer_s:
    print("\t".join([scenario, f"{kiln_s or '-'} s", f"{peer} {peer_s or '-'} s", "-", "-", "n/a"]))
    sys.exit()
k, p = float(kiln_s), float(peer_s)
r = p / k
ratio = f"kiln {r:.1f}x faster" if r >= 1 else f"kiln {1 / r:.1f}x slower"
target = f">= {factor}x faster" if factor else "(info)"
met = ("yes" if r >= float(factor) else "NO") if factor else "-"
print("\t".join([scenario, f"{k:.2f} s", f"{peer} {p:.2f} s", ratio, target, met]))
EOF
}

# summary_print: the table of every row added in this run, also written as $OUT_DIR/summary.md.
summary_print() {
  [[ -s $SUMMARY ]] || { note "no results"; return 0; }
  python3 - "$SUMMARY" "$OUT_DIR/summary.md" <<'EOF'
import sys
head = ["scenario", "kiln (median)", "peer (median)", "ratio", "target", "met"]
rows = [head] + [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
w = [max(len(r[i]) if i < len(r) else 0 for r in rows) for i in range(len(head))]
for i, r in enumerate(rows):
    print("  ".join((r[j] if j < len(r) else "").ljust(w[j]) for j in range(len(head))).rstrip())
    if i == 0:
        print("  ".join("-" * x for x in w))
with open(sys.argv[2], "w") as f:
    f.write("| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n")
    for r in rows[1:]:
        f.write("| " + " | ".join(r) + " |\n")
EOF
}

# ---- the shared fixture: a ~500 MB, 3-layer ML-shaped image as a docker-archive ------------------
FIX=$CACHE/fixture
IMAGE_TAR=$FIX/image.tar
REF=localhost/kiln-bench/ml:latest
# The fixture: a deterministic rootfs in three layers (base, Python env, model), committed layer by
# layer with buildah on storage of its own, written as a docker-archive by `buildah push`. Made once.
# The Debian bookworm python3 + pip root filesystem the ml and sbom scenarios build on, made
# once by mmdebstrap and shared with the tests' cache (the ML build test makes the same tar).
BASE_TAR=${KILN_TEST_CACHE:-/var/tmp/kiln-test-cache}/pybase-bookworm.tar
make_python_base() {
  [[ -f $BASE_TAR ]] && return 0
  command -v mmdebstrap >/dev/null || die "mmdebstrap is missing: apt-get install mmdebstrap"
  log "making the python base with mmdebstrap (once; cached at $BASE_TAR)"
  mkdir -p "$(dirname "$BASE_TAR")"
  rm -rf "$BASE_TAR"
  mmdebstrap --quiet --format=tar --variant=minbase --include=python3,python3-pip,ca-certificates bookworm "$BASE_TAR.tmp" http://deb.debian.org/debian
  mv "$BASE_TAR.tmp" "$BASE_TAR"
}

# python_scenario NAME: the setup of the scenarios that build on the python base: a fresh work
# directory WORK=$CACHE/NAME with an empty build context CTX, and a kiln store KROOT holding
# the python base (make_python_base) as BASE; CA is the host's CA bundle.
python_scenario() {
  WORK=$CACHE/$1
  KROOT=$WORK/kiln-root
  CTX=$WORK/ctx
  BASE=localhost/kiln-bench/pybase:bookworm
  CA=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
  rm -rf "$WORK"
  mkdir -p "$WORK" "$CTX"
  make_python_base
  "$KILN_BIN" --root "$KROOT" import "$BASE_TAR" -t "$BASE" >/dev/null
}

# busybox_rootfs DIR APPLET...: a root filesystem of the host's static busybox, DIR/bin/busybox
# with a link for each APPLET.
busybox_rootfs() {
  local dir=$1 a
  shift
  mkdir -p "$dir/bin"
  cp "$(command -v busybox)" "$dir/bin/busybox"
  for a in "$@"; do ln -s busybox "$dir/bin/$a"; done
}

make_fixture() {
  [[ -s $IMAGE_TAR ]] && return 0
  log "making the fixture $IMAGE_TAR (once; cached under $CACHE)"
  rm -rf "$FIX" "$CACHE/buildah"
  mkdir -p "$FIX"
  python3 "$BENCH_DIR/fixtures/gen_rootfs.py" "$FIX/rootfs"
  local parent=scratch c i=0 layer
  for layer in 1-base 2-pyenv 3-model; do
    i=$((i + 1))
    c=$(bbuildah from "$parent")
    bbuildah copy --quiet "$c" "$FIX/rootfs/$layer" / >/dev/null
    if [[ $layer == 3-model ]]; then
      bbuildah config --env PATH=/opt/venv/bin:/usr/bin:/bin --workingdir /app --cmd '["/bin/sh"]' \
        --label org.opencontainers.image.title=kiln-bench "$c"
    fi
    parent=localhost/kiln-bench/ml:layer$i
    [[ $layer == 3-model ]] && parent=$REF
    bbuildah commit --quiet --rm --format docker --timestamp 0 "$c" "$parent" >/dev/null
  done
  bbuildah push --quiet "$REF" "docker-archive:$IMAGE_TAR.tmp:$REF" >/dev/null
  mv "$IMAGE_TAR.tmp" "$IMAGE_TAR"
  bbuildah rmi --all >/dev/null 2>&1 || true
  rm -rf "$CACHE/buildah" "$FIX/rootfs"
}

# ---- a local registry (Debian's docker-registry, CNCF distribution) on 127.0.0.1 -------------------
# start_registry NAME PORT: a registry with its root under $WORK/NAME-data, pid in $WORK/NAME.pid
# (WORK is the calling scenario's work directory); stop_registry NAME; free_port; push_gzip_layout.
start_registry() {
  local name=$1 port=$2
  cat >"$WORK/$name.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $WORK/$name-data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YML
  docker-registry serve "$WORK/$name.yml" >>"$WORK/$name.log" 2>&1 &
  echo $! >"$WORK/$name.pid"
  for _ in $(seq 100); do
    curl -fso /dev/null "http://127.0.0.1:$port/v2/" && return 0
    sleep 0.05
  done
  die "registry $name did not start (see $WORK/$name.log)"
}
stop_registry() {
  local pid
  pid=$(cat "$WORK/$1.pid" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.02; done
  rm -f "$WORK/$1.pid"
}
# push_gzip_layout TAR NAME REF: pushes the docker-archive TAR to REF (a registry on 127.0.0.1)
# from an OCI layout $WORK/oci-gz:NAME that skopeo compresses (gzip) once: every tool then
# meets the same gzip blobs.
push_gzip_layout() {
  local tar=$1 name=$2 ref=$3
  if [[ ! -s $WORK/oci-gz/index.json ]]; then
    log "compressing $tar into $WORK/oci-gz (once)"
    rm -rf "$WORK/oci-gz"
    skopeo copy -q --dest-compress --dest-compress-format gzip "docker-archive:$tar" "oci:$WORK/oci-gz:$name" >&2
  fi
  skopeo copy -q --dest-tls-verify=false "oci:$WORK/oci-gz:$name" "docker://$ref" >&2
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---- the many-file fixture: a site-packages-like image (~46,000 files) as a docker-archive ---------
MANY=$CACHE/many
MANY_TAR=$MANY/image.tar
MANY_REF=localhost/kiln-bench/many:latest
make_many_fixture() {
  [[ -s $MANY_TAR ]] && return 0
  log "making the many-file fixture $MANY_TAR (once; cached under $CACHE)"
  mkdir -p "$MANY"
  python3 "$BENCH_DIR/fixtures/gen_sitepackages.py" "$MANY_TAR" --ref "$MANY_REF" >&2
}
