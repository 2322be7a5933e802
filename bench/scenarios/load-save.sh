#!/usr/bin/env bash
# Scenario load-save: `kiln load` and `kiln save` of a ~500 MB, 3-layer docker-archive against
# `podman load` / `podman save` (target: kiln at least 2x faster), with `docker load/save` and the
# hardware floor (sha256sum, cp + fsync of the archive) as information.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

WORK=$CACHE/load-save
KROOT=$WORK/kiln-root
mkdir -p "$WORK" "$CACHE/podman/tmp"

make_fixture
size_mb=$(($(stat -c %s "$IMAGE_TAR") / 1000000))
layers=$(tar -xOf "$IMAGE_TAR" manifest.json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)[0]["Layers"]))')
log "load-save: $IMAGE_TAR ($size_mb MB, $layers layers), $RUNS runs + $WARMUP warmup"
cat "$IMAGE_TAR" >/dev/null # page cache: every tool reads the archive from memory

docker=0
start_docker && docker=1

# ---- the hardware floor: hashing and copying the archive once ----------------------------------
hf floor --runs 3 --warmup 1 \
  --prepare "rm -f $WORK/floor.tar" \
  -n "sha256sum" "sha256sum $IMAGE_TAR" \
  -n "cp+fsync" "cp $IMAGE_TAR $WORK/floor.tar && sync $WORK/floor.tar"
rm -f "$WORK/floor.tar"

# ---- load ---------------------------------------------------------------------------------------
load_args=(
  --prepare "rm -rf $KROOT" -n "kiln load" "$KILN_BIN --root $KROOT load -q -i $IMAGE_TAR"
  --prepare "$PODMAN rmi -f $REF >/dev/null 2>&1; true" -n "podman load" "$PODMAN load -q -i $IMAGE_TAR"
)
if ((docker)); then
  load_args+=(--prepare "$DOCKER_CLI rmi -f $REF >/dev/null 2>&1; true" -n "docker load" "$DOCKER_CLI load -q -i $IMAGE_TAR")
fi
if [[ -n $BASELINE_BIN ]]; then
  load_args+=(--prepare "rm -rf $WORK/baseline-root" -n "kiln load (baseline)" "$BASELINE_BIN --root $WORK/baseline-root load -q -i $IMAGE_TAR")
fi
hf load --runs "$RUNS" --warmup "$WARMUP" "${load_args[@]}"
rm -rf "$WORK/baseline-root"

# ---- save (warm stores: the image is loaded in each) ---------------------------------------------
rm -rf "$KROOT"
kref=$("$KILN_BIN" --root "$KROOT" load -q -i "$IMAGE_TAR" | sed -n 's/^Loaded image: //p' | head -n1)
[[ -n $kref ]] || die "kiln load printed no image name"
bpodman image exists "$REF" || bpodman load -q -i "$IMAGE_TAR" >/dev/null
if ((docker)); then
  $DOCKER_CLI image inspect "$REF" >/dev/null 2>&1 || $DOCKER_CLI load -q -i "$IMAGE_TAR" >/dev/null
fi
note "kiln store: $(du -sh "$KROOT" | cut -f1); kiln names the image $kref"
save_args=(
  --prepare "rm -f $WORK/kiln.tar" -n "kiln save" "$KILN_BIN --root $KROOT save -q $kref -o $WORK/kiln.tar"
  --prepare "rm -f $WORK/kiln-docker.tar" -n "kiln save --format docker" "$KILN_BIN --root $KROOT save -q --format docker $kref -o $WORK/kiln-docker.tar"
  --prepare "rm -f $WORK/podman.tar" -n "podman save" "$PODMAN save -q -o $WORK/podman.tar $REF"
)
if ((docker)); then
  save_args+=(--prepare "rm -f $WORK/docker.tar" -n "docker save" "$DOCKER_CLI save -o $WORK/docker.tar $REF")
fi
hf save --runs "$RUNS" --warmup "$WARMUP" "${save_args[@]}"
for f in kiln kiln-docker podman docker; do
  [[ -f $WORK/$f.tar ]] && note "$f.tar: $(($(stat -c %s "$WORK/$f.tar") / 1000000)) MB"
done
# The archives kiln wrote must load elsewhere: check with skopeo (cheap, reads the manifests).
skopeo inspect --raw "docker-archive:$WORK/kiln.tar" >/dev/null &&
  skopeo inspect --raw "oci-archive:$WORK/kiln.tar" >/dev/null &&
  skopeo inspect --raw "docker-archive:$WORK/kiln-docker.tar" >/dev/null ||
  note "WARNING: skopeo cannot read an archive kiln saved"
rm -f "$WORK"/*.tar

# ---- summary -------------------------------------------------------------------------------------
k=$(hf_median load "kiln load")
compare_times "load ${size_mb}MB docker-archive" "$k" podman "$(hf_median load "podman load")" 2
((docker)) && compare_times "load (info)" "$k" docker "$(hf_median load "docker load")" ""
compare_times "load vs floor (info)" "$k" "cp+fsync" "$(hf_median floor "cp+fsync")" ""
compare_baseline "load vs baseline" "$k" "$(hf_median load "kiln load (baseline)")"
k=$(hf_median save "kiln save")
compare_times "save (oci+docker archive)" "$k" podman "$(hf_median save "podman save")" 2
compare_times "save --format docker" "$(hf_median save "kiln save --format docker")" podman "$(hf_median save "podman save")" 2
((docker)) && compare_times "save (info)" "$k" docker "$(hf_median save "docker save")" ""
compare_times "save vs floor (info)" "$k" "cp+fsync" "$(hf_median floor "cp+fsync")" ""
true
