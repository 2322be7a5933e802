#!/usr/bin/env bash
# Scenario sbom: `kiln env` and `kiln sbom` (package databases read from the image's snapshots,
# and from its layer blobs with --read layers) against asking the image itself with
# `kiln run --rm IMAGE python3 -m pip list`, on a Debian python3 image with a real
# site-packages (numpy, pandas, requests, scikit-learn from PyPI through the host's CA).
# Target: env/sbom at most 0.1x the run.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

RUNS=${KILN_BENCH_SBOM_RUNS:-10}
python_scenario sbom # WORK, KROOT, CTX, BASE (imported), CA
K="$KILN_BIN --root $KROOT"
cat >"$CTX/Dockerfile" <<DF
FROM $BASE
RUN pip install --break-system-packages --no-cache-dir --progress-bar off numpy pandas requests scikit-learn
DF
log "sbom: building the image (PyPI)"
$K build -q --host-ca --network host -t kiln-bench/sbom:1 "$CTX" >/dev/null
IMG=kiln-bench/sbom:1
# The run unpacks every snapshot; env and sbom then read them.
$K run --rm --network none $IMG python3 -m pip list >/dev/null
note "$($K env $IMG | grep '^packages')"
hf sbom --runs "$RUNS" --warmup 2 \
  -n "kiln env (snapshots)" "$K env --json $IMG" \
  -n "kiln sbom spdx (snapshots)" "$K sbom $IMG" \
  -n "kiln sbom cyclonedx (layers)" "$K sbom --format cyclonedx --read layers $IMG" \
  -n "kiln run pip list" "$K run --rm --network none $IMG python3 -m pip list"
RUN_S=$(hf_median sbom "kiln run pip list")
compare_times "env vs run pip list" "$(hf_median sbom "kiln env (snapshots)")" "run" "$RUN_S" 10
compare_times "sbom vs run pip list" "$(hf_median sbom "kiln sbom spdx (snapshots)")" "run" "$RUN_S" 10
compare_times "sbom from layer blobs vs run" "$(hf_median sbom "kiln sbom cyclonedx (layers)")" "run" "$RUN_S" ""
true
