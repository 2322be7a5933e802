#!/usr/bin/env bash
# Scenario diff: `kiln diff --files` of two versions of a ~500 MB ML image that differ in one
# Python package and one code file, against what Docker offers for the same question: `docker
# export` of both images plus a comparison of the two trees (target: kiln <= 0.2x). The versions
# share the fixture's three layers (as every rebuild of an ML image shares its base); kiln reads
# only the layers they do not share.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

WORK=$CACHE/diff
KROOT=$WORK/kiln-root
rm -rf "$WORK"
mkdir -p "$WORK"
make_fixture
start_docker || die "this scenario compares with docker export: dockerd must run"
"$KILN_BIN" --root "$KROOT" load -q -i "$IMAGE_TAR" >/dev/null
$DOCKER_CLI image inspect "$REF" >/dev/null 2>&1 || $DOCKER_CLI load -q -i "$IMAGE_TAR" >/dev/null

# Two versions: a package (a dist-info and a module of a few MB) and the app's code.
for v in 1 2; do
  ctx=$WORK/ctx$v
  mkdir -p "$ctx/pkg/fastlib-1.$v.dist-info" "$ctx/pkg/fastlib"
  printf 'Metadata-Version: 2.1\nName: fastlib\nVersion: 1.%s\n' "$v" >"$ctx/pkg/fastlib-1.$v.dist-info/METADATA"
  head -c $((4 << 20)) /dev/urandom >"$ctx/pkg/fastlib/_core.so"
  printf 'print("app version %s")\n' "$v" >"$ctx/app.py"
  cat >"$ctx/Dockerfile" <<DF
FROM $REF
COPY pkg/ /opt/venv/lib/python3.11/site-packages/
COPY app.py /app/app.py
DF
  "$KILN_BIN" --root "$KROOT" build -q --network none -t kiln-bench/diff:v$v "$ctx" >/dev/null
  DOCKER_BUILDKIT=1 $DOCKER_CLI build -q --network none -t kiln-bench/diff:v$v "$ctx" >/dev/null
done

cat >"$WORK/compare.py" <<'PY'
# The two exported trees compared as `kiln diff --files` does: path, type, mode, owner, size,
# link target and content hash of every entry.
import hashlib, sys, tarfile
def tree(path):
    out = {}
    with tarfile.open(path) as t:
        for m in t:
            h = hashlib.sha256(t.extractfile(m).read()).hexdigest() if m.isfile() else ""
            out[m.name] = (m.type, m.mode, m.uid, m.gid, m.size, m.linkname, h)
    return out
a, b = tree(sys.argv[1]), tree(sys.argv[2])
changed = sorted(p for p in a.keys() | b.keys() if a.get(p) != b.get(p))
print(len(changed))
PY
DOCKER_DIFF="c1=\$($DOCKER_CLI create kiln-bench/diff:v1 true) && c2=\$($DOCKER_CLI create kiln-bench/diff:v2 true) && \
$DOCKER_CLI export -o $WORK/v1.tar \$c1 && $DOCKER_CLI export -o $WORK/v2.tar \$c2 && \
$DOCKER_CLI rm \$c1 \$c2 >/dev/null && python3 $WORK/compare.py $WORK/v1.tar $WORK/v2.tar && rm -f $WORK/v1.tar $WORK/v2.tar"

log "diff: $RUNS runs + $WARMUP warmup each"
hf diff --runs "$RUNS" --warmup "$WARMUP" \
  -n "kiln diff --files" "$KILN_BIN --root $KROOT diff --files kiln-bench/diff:v1 kiln-bench/diff:v2" \
  -n "docker export + compare" "bash -c '$DOCKER_DIFF'"
note "kiln: $("$KILN_BIN" --root "$KROOT" diff --files kiln-bench/diff:v1 kiln-bench/diff:v2 | tail -n 1)"
compare_times "diff --files, 1 package + 1 file" "$(hf_median diff "kiln diff --files")" docker "$(hf_median diff "docker export + compare")" 5
true
