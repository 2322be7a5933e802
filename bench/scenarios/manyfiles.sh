#!/usr/bin/env bash
# Scenario manyfiles: an image shaped like a real Python environment (~46,000 files, Pareto sizes,
# bench/fixtures/gen_sitepackages.py), loaded from a docker-archive and pulled from a local registry,
# against podman (target: kiln at most 0.3x podman's time for both).
#
# Disk state: on ext4 mounted with `discard`, creating files right after deleting a big tree is
# 5-20x slower for minutes (see /work/shared/MACHINE-NOTES.md). So every run of every tool writes
# into a directory of its own that nothing was deleted from, the tools alternate run by run (kiln,
# podman, kiln, podman...), each run starts after `sync` and a short pause, and all run directories
# are deleted only after the last run.
#
# Rows:
# - load: `kiln load` (blobs stored and verified; layers are unpacked when first run) vs `podman load`
#   (unpacked into its storage), and `kiln load` + the first `kiln run` (ready to run, unpacked);
# - pull: `kiln pull` (stored, unpacked into snapshots: ready to run) vs `podman pull`;
# - GNU tar extracting the site-packages layer (information: the floor of one serial extraction).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

WORK=$CACHE/manyfiles
RUNS_MANY=${KILN_BENCH_MANY_RUNS:-3}
mkdir -p "$WORK"
command -v docker-registry >/dev/null || die "docker-registry is missing: apt-get install docker-registry"

make_many_fixture
size_mb=$(($(stat -c %s "$MANY_TAR") / 1000000))

SRC_PORT=$(free_port)
trap 'stop_registry src' EXIT
rm -rf "$WORK/src-data"
start_registry src "$SRC_PORT"
SRC=127.0.0.1:$SRC_PORT/bench/many:v1
push_gzip_layout "$MANY_TAR" many "$SRC"
compressed_mb=$(du -sm "$WORK/src-data" | cut -f1)
# The site-packages layer as a plain tar for GNU tar (the largest blob of the layout).
layer_gz=$(ls -S "$WORK"/oci-gz/blobs/sha256/* | head -n1)
cat "$MANY_TAR" "$layer_gz" >/dev/null # page cache
entries=$(tar -tzf "$layer_gz" | wc -l)
log "manyfiles: $MANY_TAR ($size_mb MB, $entries entries in its big layer, $compressed_mb MB gzip in $SRC); $RUNS_MANY runs each, alternating"

RUNS_DIR=$WORK/runs.$$
mkdir -p "$RUNS_DIR"
TIMES=$WORK/times.tsv
: >"$TIMES"
n=0
# timed NAME COMMAND...: runs COMMAND once in the shell, appends "NAME<TAB>seconds" to $TIMES.
timed() {
  local name=$1 start end
  shift
  sync
  sleep 2
  start=$(date +%s.%N)
  bash -c "$*" >/dev/null
  end=$(date +%s.%N)
  python3 -c "print('$name\t' + f'{$end - $start:.3f}')" | tee -a "$TIMES" >&2
}
# podman_at DIR: podman on storage under DIR; its runroot (at most 50 characters) under /tmp.
RUNROOTS=/tmp/kiln-many.$$
podman_at() {
  local rel=${1#"$RUNS_DIR"/}
  echo "podman --root $1/root --runroot $RUNROOTS-${rel//\//-} --tmpdir $1/tmp --storage-driver $PODMAN_DRIVER --cgroup-manager cgroupfs --events-backend file --runtime runc"
}

for i in $(seq "$RUNS_MANY"); do
  n=$((n + 1))
  d=$RUNS_DIR/$n
  mkdir -p "$d"/{kl,kr,kp,pl,pp,tar}
  # podman's storage is initialised before it is timed (kiln makes its store as it goes).
  p_load=$(podman_at "$d/pl")
  p_pull=$(podman_at "$d/pp")
  mkdir -p "$d/pl/tmp" "$d/pp/tmp"
  $p_load images >/dev/null
  $p_pull images >/dev/null
  timed "kiln load" "$KILN_BIN --root $d/kl load -q -i $MANY_TAR"
  timed "podman load" "$p_load load -q -i $MANY_TAR"
  timed "kiln load + first run" "$KILN_BIN --root $d/kr load -q -i $MANY_TAR && $KILN_BIN --root $d/kr run --rm --network none $MANY_REF /bin/true"
  timed "kiln pull" "$KILN_BIN --root $d/kp pull -q $SRC"
  timed "podman pull" "$p_pull pull -q --tls-verify=false $SRC"
  if [[ -n $BASELINE_BIN ]]; then
    mkdir -p "$d/bp"
    timed "kiln pull (baseline)" "$BASELINE_BIN --root $d/bp pull -q $SRC"
  fi
  timed "GNU tar -xzf" "tar -xzf $layer_gz -C $d/tar"
done
# The images must be complete: the pulled one runs, and holds every file.
got=$("$KILN_BIN" --root "$RUNS_DIR/1/kp" run --rm --network none "$SRC" /bin/find /opt -xdev | wc -l)
note "kiln's pulled image lists $got paths under /opt (the layer has $entries entries)"

median() { python3 - "$TIMES" "$1" <<'PY'
import statistics, sys
v = [float(l.split("\t")[1]) for l in open(sys.argv[1]) if l.split("\t")[0] == sys.argv[2]]
print(f"{statistics.median(v):.3f}" if v else "")
PY
}
for c in "kiln load" "podman load" "kiln load + first run" "kiln pull" "podman pull" "GNU tar -xzf" "kiln pull (baseline)"; do
  [[ -n $(median "$c") ]] && note "$c: median $(median "$c") s of $RUNS_MANY"
done
compare_times "load many-file ${size_mb}MB (blobs stored)" "$(median "kiln load")" podman "$(median "podman load")" 3.33
compare_times "load many-file + first run (unpacked)" "$(median "kiln load + first run")" podman "$(median "podman load")" 3.33
compare_times "pull many-file ${compressed_mb}MB (unpacked)" "$(median "kiln pull")" podman "$(median "podman pull")" 3.33
compare_times "pull many-file vs GNU tar -xzf (info)" "$(median "kiln pull")" "GNU tar" "$(median "GNU tar -xzf")" ""
compare_baseline "pull many-file vs baseline" "$(median "kiln pull")" "$(median "kiln pull (baseline)")"
cp "$TIMES" "$OUT_DIR/manyfiles.tsv"

# Deleted only now, after the last run (podman's overlay storage may hold mounts: unmounted first).
for s in "$RUNS_DIR"/*/pl "$RUNS_DIR"/*/pp; do
  $(podman_at "$s") rmi -af >/dev/null 2>&1 || true
  $(podman_at "$s") system reset -f >/dev/null 2>&1 || true
done
rm -rf "$RUNS_DIR" "$RUNROOTS"-*
true
