#!/usr/bin/env bash
# Scenario build: kiln's own overhead in `kiln build` against `docker build` (BuildKit, Docker
# 20.10) on the same busybox base and a Dockerfile whose RUN steps are trivial:
# - `--no-cache` build (target: kiln <= 0.5x docker);
# - fully cached rebuild (target: kiln <= 0.5x docker);
# - rebuild after editing the one copied file (target: kiln <= 0.5x docker).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

WORK=$CACHE/build
KROOT=$WORK/kiln-root
CTX=$WORK/ctx
BASE=localhost/kiln-bench/busybox:build
rm -rf "$WORK"
mkdir -p "$CTX"
busybox_rootfs "$WORK/rootfs" sh true echo cat
"$KILN_BIN" --root "$KROOT" import "$WORK/rootfs" -t "$BASE" >/dev/null
"$KILN_BIN" --root "$KROOT" save "$BASE" -o "$WORK/base.tar"
start_docker || die "this scenario compares with docker build: dockerd must run"
$DOCKER_CLI load -q -i "$WORK/base.tar" >/dev/null

cat >"$CTX/Dockerfile" <<DF
FROM $BASE
ENV APP=/app
WORKDIR /app
COPY app.txt ./
RUN echo one > /one
RUN cat /app/app.txt > /two
CMD ["cat", "/two"]
DF
echo v0 >"$CTX/app.txt"
KB="$KILN_BIN --root $KROOT build -q --network none -t kiln-bench/app:b $CTX"
DB="$DOCKER_CLI build -q --network none -t kiln-bench/app:b $CTX"
export DOCKER_BUILDKIT=1
base_nocache=() base_cached=() base_edit=()
if [[ -n $BASELINE_BIN ]]; then
  "$BASELINE_BIN" --root "$WORK/baseline-root" import "$WORK/rootfs" -t "$BASE" >/dev/null
  KBB="$BASELINE_BIN --root $WORK/baseline-root build -q --network none -t kiln-bench/app:b $CTX"
  base_nocache=(-n "kiln build --no-cache (baseline)" "$KBB --no-cache")
  base_cached=(-n "kiln build (cached, baseline)" "$KBB")
  base_edit=(--prepare "date +%s%N > $CTX/app.txt" -n "kiln build (edit, baseline)" "$KBB")
fi
log "build: $RUNS runs + $WARMUP warmup each"

hf build-nocache --runs "$RUNS" --warmup "$WARMUP" \
  -n "kiln build --no-cache" "$KB --no-cache" \
  -n "docker build --no-cache" "$DB --no-cache" "${base_nocache[@]}"
$KB >/dev/null
$DB >/dev/null
[[ -n $BASELINE_BIN ]] && $KBB >/dev/null
hf build-cached --runs "$RUNS" --warmup "$WARMUP" \
  -n "kiln build (cached)" "$KB" \
  -n "docker build (cached)" "$DB" "${base_cached[@]}"
hf build-edit --runs "$RUNS" --warmup "$WARMUP" \
  --prepare "date +%s%N > $CTX/app.txt" -n "kiln build (edit)" "$KB" \
  --prepare "date +%s%N > $CTX/app.txt" -n "docker build (edit)" "$DB" "${base_edit[@]}"
"$KILN_BIN" --root "$KROOT" run --rm --network none kiln-bench/app:b >/dev/null ||
  note "WARNING: the image kiln built does not run"

compare_times "build --no-cache (trivial RUNs)" "$(hf_median build-nocache "kiln build --no-cache")" docker "$(hf_median build-nocache "docker build --no-cache")" 2
compare_times "build, fully cached" "$(hf_median build-cached "kiln build (cached)")" docker "$(hf_median build-cached "docker build (cached)")" 2
compare_times "build after editing a copied file" "$(hf_median build-edit "kiln build (edit)")" docker "$(hf_median build-edit "docker build (edit)")" 2
compare_baseline "build --no-cache vs baseline" "$(hf_median build-nocache "kiln build --no-cache")" "$(hf_median build-nocache "kiln build --no-cache (baseline)")"
compare_baseline "build, cached, vs baseline" "$(hf_median build-cached "kiln build (cached)")" "$(hf_median build-cached "kiln build (cached, baseline)")"
compare_baseline "build after an edit vs baseline" "$(hf_median build-edit "kiln build (edit)")" "$(hf_median build-edit "kiln build (edit, baseline)")"
true
