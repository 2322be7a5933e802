#!/usr/bin/env bash
# Scenario ml: the ML Dockerfile (a Debian python3 base + `pip install scikit-learn` from PyPI +
# the app), cold (`--no-cache`), kiln against `docker build` (BuildKit, Docker 20.10), both on
# the host network with the host's CA bundle as a build secret (PyPI is reached through the
# host's TLS-inspecting proxy here). Target: kiln at most 0.9x docker. The pip step dominates
# both; the difference is what each does around it (snapshot, diff, compress, commit).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

ML_RUNS=${KILN_BENCH_ML_RUNS:-3}
python_scenario ml # WORK, KROOT, CTX, BASE (imported), CA
start_docker || die "this scenario compares with docker build: dockerd must run"
$DOCKER_CLI import "$BASE_TAR" "$BASE" >/dev/null

cat >"$CTX/Dockerfile" <<DF
FROM $BASE
RUN --mount=type=secret,id=ca,target=/etc/ssl/certs/ca-certificates.crt \\
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt pip install --break-system-packages --no-cache-dir --progress-bar off scikit-learn
WORKDIR /app
COPY app.py ./
CMD ["python3", "app.py"]
DF
cat >"$CTX/app.py" <<'PY'
from sklearn.linear_model import LinearRegression
print(LinearRegression().fit([[0], [1]], [0, 2]).coef_[0])
PY
export DOCKER_BUILDKIT=1
log "ml: $ML_RUNS cold builds each (PyPI downloads every time: network noise included)"
hf ml --runs "$ML_RUNS" --warmup 1 \
  -n "kiln build --no-cache (ml)" "$KILN_BIN --root $KROOT build -q --no-cache --network host --secret id=ca,src=$CA -t kiln-bench/ml:b $CTX" \
  -n "docker build --no-cache (ml)" "$DOCKER_CLI build -q --no-cache --network host --secret id=ca,src=$CA -t kiln-bench/ml:b $CTX"
"$KILN_BIN" --root "$KROOT" run --rm --network none kiln-bench/ml:b >/dev/null ||
  note "WARNING: the image kiln built does not run"
note "image sizes: kiln $(du -sh "$KROOT/blobs" | cut -f1) (store, uncompressed layers), docker $($DOCKER_CLI image inspect kiln-bench/ml:b --format '{{.Size}}') bytes"
compare_times "ML Dockerfile cold (pip scikit-learn)" "$(hf_median ml "kiln build --no-cache (ml)")" docker "$(hf_median ml "docker build --no-cache (ml)")" 1.11
true
