#!/usr/bin/env bash
# Scenario project: a kiln project (examples/iris: scikit-learn + FastAPI from uv.lock, a model
# file, app.py) built by `kiln build DIR` against the Dockerfile a Docker user writes for it:
# the same Debian bookworm python3 base (made by `kiln base debian`, loaded into docker),
# `python3 -m venv /opt/venv`, `pip install -r requirements.txt` (exported from the same
# uv.lock, every version pinned), COPY models/ and app.py. Both download the wheels from PyPI
# in every cold run (uv's cache is empty, pip runs with --no-cache-dir), on the host network,
# with the host's CA bundle as a build secret for pip (PyPI is reached through the host's
# TLS-inspecting proxy here).
# - cold build: kiln from a fresh store that has the Debian base already built (its blobs,
#   snapshots and the records naming them), as docker has its base image loaded; uv's cache
#   and the project layer cache are empty, so every wheel is downloaded and installed again,
#   vs `docker build --no-cache`. Target: kiln <= 0.25x docker.
# - rebuild after appending a comment to app.py (layer caches warm). Target: kiln <= 0.5x.
# - re-push of that edit to a local registry (Debian's docker-registry on 127.0.0.1): the blobs
#   and bytes `kiln push --json` sends (only the code layer and the config are expected).
# - image size, kiln vs docker, uncompressed (sum of the layer tars, as `docker save` and an
#   uncompressed kiln store hold them) and compressed (sum of config + layer blobs in the
#   registry after each tool's own push, gzip both). Target: kiln <= 0.8x docker.
# uv is installed once (KILN_UV, else `uv` on PATH, else kiln's own pinned copy, installed by
# the first build and kept in the bench cache) so that installing uv is never timed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

WORK=$CACHE/project
TRASH=$CACHE/project.old
WARM=$WORK/warm-root      # the throwaway build: its .deb cache seeds every cold root
ROOTS=$WORK/roots         # one fresh kiln store per cold run, never deleted between runs
PROJ=$WORK/iris           # kiln's copy of examples/iris (kiln build writes kiln.lock into it)
DCTX=$WORK/docker-ctx     # docker's context: Dockerfile, requirements.txt, app.py, models/
PYBASE=localhost/kiln-bench/pyvenv:bookworm
DIMG=kiln-bench/iris:docker
CA=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
COLD_RUNS=${KILN_BENCH_PROJECT_RUNS:-3}
command -v docker-registry >/dev/null || die "docker-registry is missing: apt-get install docker-registry"
start_docker || die "this scenario compares with docker build: dockerd must run"
export DOCKER_BUILDKIT=1

# Stores of many files: the old tree is moved aside now and deleted after the last measurement
# (ext4 with discard creates files slowly for minutes after a large rm -rf; see MACHINE-NOTES).
if [[ -e $WORK ]]; then
  rm -rf "$TRASH"
  mv "$WORK" "$TRASH"
fi
mkdir -p "$WORK" "$ROOTS" "$DCTX" "$WORK/docker-iids"
tar -C "$REPO_ROOT/examples" -cf - --exclude=.venv --exclude=__pycache__ iris | tar -C "$WORK" -xf -

# ---- uv, installed once --------------------------------------------------------------------------
UV_KEEP=$CACHE/uv-pinned/uv
UV_BIN=${KILN_UV:-}
[[ -z $UV_BIN ]] && UV_BIN=$(command -v uv || true)
[[ -z $UV_BIN && -x $UV_KEEP ]] && UV_BIN=$UV_KEEP

# ---- the throwaway build: .debs, kiln.lock, checks that it builds --------------------------------
log "project: throwaway kiln build of examples/iris (downloads the .debs; uv: ${UV_BIN:-kiln installs its pinned release})"
if [[ -n $UV_BIN ]]; then
  KILN_UV=$UV_BIN "$KILN_BIN" --root "$WARM" build -q -t bench/iris:warm "$PROJ" >/dev/null
else
  # No uv anywhere: kiln installs its pinned release into the store's cache; keep that binary.
  env -u KILN_UV PATH=/usr/sbin:/usr/bin:/sbin:/bin "$KILN_BIN" --root "$WARM" build -q -t bench/iris:warm "$PROJ" >/dev/null
  got=$(find "$WARM/cache/uv" -name uv -type f | head -n1)
  [[ -n $got ]] || die "kiln built without installing uv into $WARM/cache/uv"
  mkdir -p "$(dirname "$UV_KEEP")"
  cp "$got" "$UV_KEEP.tmp" && mv "$UV_KEEP.tmp" "$UV_KEEP"
  UV_BIN=$UV_KEEP
fi
export KILN_UV=$UV_BIN
note "uv: $KILN_UV ($("$KILN_UV" --version))"
[[ -s $PROJ/kiln.lock ]] || die "the throwaway build left no kiln.lock in $PROJ"

# ---- docker's side: the same Debian base + python3-venv, the same pins ---------------------------
# python3-venv brings ensurepip's wheel: the venv gets its own pip (no python3-pip needed).
log "project: the docker base ($PYBASE: kiln base debian python3,python3-venv, loaded into docker)"
"$KILN_BIN" --root "$WARM" base debian --suite bookworm --packages python3,python3-venv -t "$PYBASE" -q >/dev/null
"$KILN_BIN" --root "$WARM" save "$PYBASE" -o "$WORK/pybase.tar" 2>/dev/null
$DOCKER_CLI load -q -i "$WORK/pybase.tar" >/dev/null
rm -f "$WORK/pybase.tar"
(cd "$PROJ" && UV_CACHE_DIR=$WORK/uv-export-cache "$KILN_UV" export --frozen --no-dev --no-emit-workspace \
  --no-hashes --no-header -q -o "$DCTX/requirements.txt")
cp -r "$PROJ/app.py" "$PROJ/models" "$DCTX/"
cat >"$DCTX/Dockerfile" <<DF
FROM $PYBASE
RUN python3 -m venv /opt/venv
ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY requirements.txt /tmp/requirements.txt
RUN --mount=type=secret,id=ca PIP_CERT=/run/secrets/ca \\
    pip install --no-cache-dir --disable-pip-version-check --progress-bar off -r /tmp/requirements.txt
WORKDIR /app
COPY models/ ./models/
COPY app.py ./
EXPOSE 8000
CMD ["uvicorn", "app:app", "--host", "0.0.0.0", "--port", "8000"]
DF
DB="$DOCKER_CLI build -q --network host --secret id=ca,src=$CA -t $DIMG --iidfile $WORK/docker-iids/\$(date +%s%N) $DCTX"
log "project: throwaway docker build (checks the Dockerfile; warms the daemon)"
eval "$DB --no-cache" >/dev/null

# ---- 1. cold builds ------------------------------------------------------------------------------
# A fresh store per run (hard links of the warm one): the blobs, snapshots and the Debian and
# build-step records, so the Debian base is there as docker's base image is; not uv's cache
# (cache/uv-cache) nor the project layer records (cache/project/layers): every wheel is
# downloaded and installed, and every Python, env and code layer written again.
cat >"$WORK/fresh-root.sh" <<SH
#!/usr/bin/env bash
# fresh-root.sh NAME: a new store under $ROOTS seeded with the Debian base; its path in $WORK/NAME.path
set -euo pipefail
r=\$(mktemp -d "$ROOTS/\$1.XXXX")
mkdir -p "\$r/cache/project"
cp -al "$WARM/blobs" "$WARM/snapshots" "$WARM/oci-layout" "\$r/"
cp -al "$WARM/cache/debian" "$WARM/cache/build" "\$r/cache/"
cp -al "$WARM/cache/project/bases" "\$r/cache/project/"
echo "\$r" >"$WORK/\$1.path"
SH
KB="$KILN_BIN --root \$(cat $WORK/kiln.path) build -q -t bench/iris:v1 $PROJ"
base_cold=()
BASE_OK=
if [[ -n $BASELINE_BIN ]]; then
  if "$BASELINE_BIN" build --help 2>/dev/null | grep 'kiln project' >/dev/null; then
    BASE_OK=1
    base_cold=(--prepare "bash $WORK/fresh-root.sh baseline" -n "kiln build iris cold (baseline)"
      "$BASELINE_BIN --root \$(cat $WORK/baseline.path) build -q -t bench/iris:v1 $PROJ")
  else
    note "KILN_BASELINE_BIN does not build kiln projects: no baseline rows here"
  fi
fi
log "project: cold builds, $COLD_RUNS each (PyPI downloads every time: network noise included)"
hf project-cold --runs "$COLD_RUNS" --warmup 0 \
  --prepare "bash $WORK/fresh-root.sh kiln" -n "kiln build iris cold" "$KB" \
  --prepare "true" -n "docker build --no-cache iris" "$DB --no-cache" \
  "${base_cold[@]}"
KR=$(cat "$WORK/kiln.path")
K="$KILN_BIN --root $KR"
$K run --rm --network none bench/iris:v1 python3 -c 'import app' ||
  note "WARNING: the image kiln built does not import app.py"
$DOCKER_CLI run --rm --network none "$DIMG" python3 -c 'import app' ||
  note "WARNING: the image docker built does not import app.py"

# ---- registry: both images pushed once (compressed sizes) ----------------------------------------
PORT=$(free_port)
trap 'stop_registry registry' EXIT
start_registry registry "$PORT"
REG=127.0.0.1:$PORT
log "project: pushing both images to $REG (kiln push; docker push, its daemon trusts 127.0.0.0/8 over HTTP)"
$K push --json bench/iris:v1 "$REG/bench/iris:v1" >"$WORK/push-v1.json"
$DOCKER_CLI tag "$DIMG" "$REG/bench/iris-docker:v1"
$DOCKER_CLI push "$REG/bench/iris-docker:v1" >/dev/null
$DOCKER_CLI rmi "$REG/bench/iris-docker:v1" >/dev/null
$DOCKER_CLI save "$DIMG" -o "$WORK/docker-image.tar"

# ---- sizes ---------------------------------------------------------------------------------------
cat >"$WORK/sizes.py" <<'PY'
"""sizes.py OUT KILN_ROOT KILN_IMAGES_JSON KILN_NAME DOCKER_TAR REGISTRY: per-layer sizes of both images.

Uncompressed: the layer tars (kiln: its blobs, decompressed when stored gzip/zstd; docker: the
tars of `docker save`). Compressed: the config and layer blobs of each image's manifest in the
registry, as each tool pushed them. Labels: the image config's history (created_by)."""
import gzip, json, subprocess, sys, tarfile, urllib.request

out, kroot, kimages, kname, dtar, reg = sys.argv[1:]
ACCEPT = ", ".join(["application/vnd.oci.image.manifest.v1+json",
                    "application/vnd.docker.distribution.manifest.v2+json"])

def labels(cfg):
    return [" ".join(h.get("created_by", "").split())[:70] for h in cfg.get("history", []) if not h.get("empty_layer")]

def scan(f):
    """(bytes, .pyc entries) of an uncompressed tar stream."""
    n = pyc = 0
    class Counting:
        def read(self, k=-1):
            nonlocal n
            b = f.read(k)
            n += len(b)
            return b
    with tarfile.open(fileobj=Counting(), mode="r|") as t:
        for m in t:
            pyc += m.name.endswith(".pyc")
    while f.read(1 << 20):  # the end-of-archive padding
        pass
    return n, pyc

def registry_sizes(repo, tag):
    req = urllib.request.Request(f"http://{reg}/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT})
    m = json.load(urllib.request.urlopen(req))
    return [l["size"] for l in m["layers"]], m["config"]["size"]

# kiln
names = {n: i for i in json.load(open(kimages)) for n in i.get("Names", [])}
img = next(v for n, v in names.items() if n.endswith(kname))
blob = lambda d: f"{kroot}/blobs/sha256/{d.split(':')[1]}"
man = json.load(open(blob(img["Digest"])))
cfg = json.load(open(blob(man["config"]["digest"])))
k_layers = []
for l, lab in zip(man["layers"], labels(cfg)):
    mt = l["mediaType"]
    if mt.endswith("+zstd"):
        p = subprocess.Popen(["zstd", "-dc", blob(l["digest"])], stdout=subprocess.PIPE)
        u, pyc = scan(p.stdout)
        p.wait()
    else:
        with (gzip.open if mt.endswith("+gzip") else open)(blob(l["digest"]), "rb") as f:
            u, pyc = scan(f)
    k_layers.append({"label": lab, "stored": l["size"], "tar": u, "pyc": pyc})
kc, kcfg = registry_sizes("bench/iris", "v1")
for x, c in zip(k_layers, kc):
    x["pushed"] = c

# docker
d_layers = []
with tarfile.open(dtar) as t:
    dm = json.load(t.extractfile("manifest.json"))[0]
    dcfg = json.load(t.extractfile(dm["Config"]))
    for path, lab in zip(dm["Layers"], labels(dcfg)):
        u, pyc = scan(t.extractfile(path))
        d_layers.append({"label": lab, "tar": u, "pyc": pyc})
dc, dcfg_size = registry_sizes("bench/iris-docker", "v1")
for x, c in zip(d_layers, dc):
    x["pushed"] = c

mb = lambda b: f"{b / 1e6:9.2f}"
for name, layers in (("kiln", k_layers), ("docker", d_layers)):
    print(f"    {name}: {'tar MB':>9} {'pushed MB':>9} {'.pyc':>6}  layer", file=sys.stderr)
    for x in layers:
        print(f"    {'':{len(name)}}  {mb(x['tar'])} {mb(x['pushed'])} {x['pyc']:6}  {x['label']}", file=sys.stderr)
res = {
    "kiln_tar": sum(x["tar"] for x in k_layers), "docker_tar": sum(x["tar"] for x in d_layers),
    "kiln_pushed": sum(kc) + kcfg, "docker_pushed": sum(dc) + dcfg_size,
    "kiln_pyc": sum(x["pyc"] for x in k_layers), "docker_pyc": sum(x["pyc"] for x in d_layers),
    "kiln_stored": sum(x["stored"] for x in k_layers),
}
json.dump(res, open(out, "w"))
PY
log "project: image sizes (decompresses every layer once)"
$K images --json >"$WORK/kiln-images.json"
python3 "$WORK/sizes.py" "$WORK/sizes.json" "$KR" "$WORK/kiln-images.json" bench/iris:v1 "$WORK/docker-image.tar" "$REG"
rm -f "$WORK/docker-image.tar"
read -r ktar dtar kpush dpush kpyc dpyc kstored < <(python3 -c "
import json; r = json.load(open('$WORK/sizes.json'))
print(*(r[k] for k in ('kiln_tar', 'docker_tar', 'kiln_pushed', 'docker_pushed', 'kiln_pyc', 'docker_pyc', 'kiln_stored')))")
note "uncompressed layer tars: kiln $ktar bytes, docker $dtar bytes (docker image inspect .Size, file bytes without tar headers: $($DOCKER_CLI image inspect -f '{{.Size}}' "$DIMG"))"
note "compressed (config + layers in the registry): kiln $kpush bytes, docker $dpush bytes; kiln's store holds $kstored bytes (layers stored uncompressed; kiln push gzips them)"
note ".pyc files: kiln $kpyc, docker $dpyc (pip compiles bytecode at install; uv, as kiln runs it, does not)"

# ---- 2. rebuild after editing app.py -------------------------------------------------------------
KE="$KILN_BIN --root $KR build -q -t bench/iris:v2 $PROJ"
$KE >/dev/null
eval "$DB" >/dev/null
base_edit=()
if [[ -n $BASE_OK ]]; then
  BR=$(cat "$WORK/baseline.path")
  "$BASELINE_BIN" --root "$BR" build -q -t bench/iris:v2 "$PROJ" >/dev/null
  base_edit=(--prepare "echo \"# edit \$(date +%s%N)\" >>$PROJ/app.py" -n "kiln build iris (edit, baseline)"
    "$BASELINE_BIN --root $BR build -q -t bench/iris:v2 $PROJ")
fi
log "project: rebuild after appending a comment to app.py, $RUNS runs + $WARMUP warmup each"
hf project-edit --runs "$RUNS" --warmup "$WARMUP" \
  --prepare "echo \"# edit \$(date +%s%N)\" >>$PROJ/app.py" -n "kiln build iris (edit)" "$KE" \
  --prepare "echo \"# edit \$(date +%s%N)\" >>$DCTX/app.py" -n "docker build iris (edit)" "$DB" \
  "${base_edit[@]}"
# the kiln side again, so that v2 is the store's last build of $PROJ
$KE >/dev/null

# ---- 3. re-push after the edit -------------------------------------------------------------------
start=$(date +%s.%N)
$K push --json bench/iris:v2 "$REG/bench/iris:v2" >"$WORK/push-v2.json"
end=$(date +%s.%N)
read -r repush_s sent pushed total what ok < <(python3 - "$WORK/push-v2.json" "$REG" "$start" "$end" <<'PY'
import json, sys, urllib.request
r = json.load(open(sys.argv[1]))
reg, start, end = sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
req = urllib.request.Request(f"http://{reg}/v2/bench/iris/manifests/v2", headers={"Accept": "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"})
m = json.load(urllib.request.urlopen(req))
role = {m["config"]["digest"]: "config"}
n = len(m["layers"])
for i, l in enumerate(m["layers"]):
    role[l["digest"]] = f"layer{i + 1}/{n}"
sent = [b for b in r["blobs"] if b["status"] == "pushed"]
what = ",".join(f'{role.get(b["digest"], "?")}:{b["size"]}B' for b in sent) or "nothing"
# Expected: the last layer (the code layer) and the config, nothing else.
ok = {role.get(b["digest"]) for b in sent} <= {"config", f"layer{n}/{n}"}
print(f"{end - start:.2f}", r["uploaded_bytes"], len(sent), len(r["blobs"]), what, "yes" if ok else "NO")
PY
)
note "re-push after the app.py edit: $pushed of $total blobs sent ($what), $sent bytes of blobs + a manifest of $(python3 -c "import json; print(json.load(open('$WORK/push-v2.json'))['size'])") bytes, ${repush_s} s"

# ---- summary -------------------------------------------------------------------------------------
compare_times "iris project build, cold (.debs cached)" "$(hf_median project-cold "kiln build iris cold")" docker "$(hf_median project-cold "docker build --no-cache iris")" 4
compare_times "iris rebuild after an app.py edit" "$(hf_median project-edit "kiln build iris (edit)")" docker "$(hf_median project-edit "docker build iris (edit)")" 2
summary_add "iris re-push after the app.py edit (info)" "$repush_s s" "$sent bytes sent" "$pushed/$total blobs: $what" "code layer + config only" "$ok"
size_row() {
  python3 - "$@" >>"$SUMMARY" <<'EOF'
import sys
what, k, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
print("\t".join([what, f"{k / 1e6:.1f} MB", f"docker {d / 1e6:.1f} MB", f"kiln {k / d:.2f}x", "<= 0.8x", "yes" if k <= 0.8 * d else "NO"]))
EOF
}
size_row "iris image size, uncompressed layer tars" "$ktar" "$dtar"
size_row "iris image size, pushed (gzip)" "$kpush" "$dpush"
compare_baseline "iris cold build vs baseline" "$(hf_median project-cold "kiln build iris cold")" "$(hf_median project-cold "kiln build iris cold (baseline)")"
compare_baseline "iris rebuild after an edit vs baseline" "$(hf_median project-edit "kiln build iris (edit)")" "$(hf_median project-edit "kiln build iris (edit, baseline)")"

# ---- cleanup, after the last measurement ---------------------------------------------------------
# docker: the images of the runs before the last (the tagged one stays, like other scenarios').
keep=$($DOCKER_CLI image inspect -f '{{.Id}}' "$DIMG" 2>/dev/null || true)
for f in "$WORK"/docker-iids/*; do
  id=$(cat "$f")
  [[ $id == "$keep" ]] || $DOCKER_CLI rmi "$id" >/dev/null 2>&1 || true
done
# kiln: the cold stores of the runs before the last, and the previous run's tree.
for r in "$ROOTS"/*; do
  [[ $r == "$KR" || $r == "${BR:-}" ]] || rm -rf "$r"
done
rm -rf "$TRASH"
note "reproduce: KILN_BIN=$KILN_BIN bench/run.sh project   (or: bash bench/scenarios/project.sh; cache: $WORK)"
true
