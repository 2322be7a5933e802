#!/usr/bin/env bash
# Scenario registry: pull and push of the ~500 MB fixture through a local registry (Debian's
# docker-registry, CNCF distribution, on 127.0.0.1).
# - pull, unpacked and ready to run: `kiln pull` against `podman pull` (target: kiln <= 0.5x).
# - push to an empty registry: `kiln push` against `skopeo copy` from an OCI layout holding the
#   same gzip blobs (target: kiln <= 0.8x).
# - re-push after one layer changed: the bytes kiln sends (only that layer's) and the time.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

WORK=$CACHE/registry
KROOT=$WORK/kiln-pull
KPUSH=$WORK/kiln-push
mkdir -p "$WORK" "$CACHE/podman/tmp"
command -v docker-registry >/dev/null || die "docker-registry is missing: apt-get install docker-registry"

# start_registry, stop_registry and free_port come from lib.sh.

SRC_PORT=$(free_port)
DST_PORT=$(free_port)
trap 'stop_registry src; stop_registry dst' EXIT
rm -rf "$WORK/src-data" "$WORK/dst-data"
start_registry src "$SRC_PORT"
SRC=127.0.0.1:$SRC_PORT/bench/ml:v1

make_fixture
# The same gzip blobs for every tool: an OCI layout compressed once by skopeo, pushed to src.
push_gzip_layout "$IMAGE_TAR" ml "$SRC"
compressed_mb=$(du -sm "$WORK/src-data" | cut -f1)
log "registry: $SRC holds the fixture ($compressed_mb MB compressed); $RUNS runs + $WARMUP warmup"

# ---- pull: unpacked and ready to run -------------------------------------------------------------
base_pull=()
if [[ -n $BASELINE_BIN ]]; then
  base_pull=(--prepare "rm -rf $WORK/baseline-root" -n "kiln pull (baseline)" "$BASELINE_BIN --root $WORK/baseline-root pull -q $SRC")
fi
hf pull --runs "$RUNS" --warmup "$WARMUP" \
  --prepare "rm -rf $KROOT" -n "kiln pull" "$KILN_BIN --root $KROOT pull -q $SRC" \
  --prepare "$PODMAN rmi -af >/dev/null 2>&1; true" -n "podman pull" "$PODMAN pull -q --tls-verify=false $SRC" \
  "${base_pull[@]}"
rm -rf "$WORK/baseline-root"
"$KILN_BIN" --root "$KROOT" run --rm --network none "$SRC" /bin/true ||
  note "WARNING: the image kiln pulled does not run"

# ---- push to an empty registry -------------------------------------------------------------------
# The kiln store holding the same blobs: what the pull above left.
rm -rf "$KPUSH"
"$KILN_BIN" --root "$KPUSH" pull -q "$SRC" >/dev/null
cat >"$WORK/reset-dst.sh" <<SH
#!/usr/bin/env bash
source "$BENCH_DIR/lib.sh"
$(declare -f start_registry stop_registry)
WORK=$WORK
stop_registry dst
rm -rf "$WORK/dst-data"
start_registry dst $DST_PORT
SH
DST=127.0.0.1:$DST_PORT/bench/ml:v1
hf push --runs "$RUNS" --warmup "$WARMUP" \
  --prepare "bash $WORK/reset-dst.sh" -n "kiln push" "$KILN_BIN --root $KPUSH push -q $SRC $DST" \
  --prepare "bash $WORK/reset-dst.sh" -n "skopeo copy" "skopeo copy -q --dest-tls-verify=false oci:$WORK/oci-gz:ml docker://$DST"

# ---- re-push after one layer changed -------------------------------------------------------------
bash "$WORK/reset-dst.sh"
"$KILN_BIN" --root "$KPUSH" push -q "$SRC" "$DST" >/dev/null
# v2: the same image plus one small layer (a container's change, committed).
"$KILN_BIN" --root "$KPUSH" rm -f bench-edit >/dev/null 2>&1 || true
"$KILN_BIN" --root "$KPUSH" run --name bench-edit --network none "$SRC" /bin/sh -c 'echo v2 > /app/VERSION' >/dev/null
"$KILN_BIN" --root "$KPUSH" commit bench-edit bench/ml:v2 >/dev/null
"$KILN_BIN" --root "$KPUSH" rm -f bench-edit >/dev/null
start=$(date +%s.%N)
"$KILN_BIN" --root "$KPUSH" push --json bench/ml:v2 "127.0.0.1:$DST_PORT/bench/ml:v2" >"$WORK/repush.json"
end=$(date +%s.%N)
read -r sent pushed total < <(python3 - "$WORK/repush.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(r["uploaded_bytes"], sum(b["status"] == "pushed" for b in r["blobs"]), len(r["blobs"]))
PY
)
note "re-push with one changed layer: $pushed of $total blobs sent, $sent bytes, $(python3 -c "print(f'{$end-$start:.2f}')") s"
summary_add "re-push, one layer changed (info)" "$(python3 -c "print(f'{$end-$start:.2f} s')")" "$sent bytes sent" "$pushed/$total blobs" "only the changed layer" "$( ((pushed <= 2)) && echo yes || echo NO)"

# ---- summary -------------------------------------------------------------------------------------
compare_times "pull ${compressed_mb}MB (unpacked)" "$(hf_median pull "kiln pull")" podman "$(hf_median pull "podman pull")" 2
compare_times "push to an empty registry" "$(hf_median push "kiln push")" skopeo "$(hf_median push "skopeo copy")" 1.25
compare_baseline "pull vs baseline" "$(hf_median pull "kiln pull")" "$(hf_median pull "kiln pull (baseline)")"
rm -rf "$KROOT"
true
